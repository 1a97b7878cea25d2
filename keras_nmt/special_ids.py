"""The ids every SentencePiece model of a run reserves (`data.tokenizer.train_sentencepiece`
sets them), and what the model, the losses and the decoding strategies know of the
vocabulary. Imports nothing, so that code which needs an id does not load a tokenizer."""

PAD_ID = 0  # padding: masked out of attention and losses, never emitted
BOS_ID = 1  # the first decoder input
EOS_ID = 2  # ends every source and target sequence
UNK_ID = 3  # a piece outside the vocabulary
