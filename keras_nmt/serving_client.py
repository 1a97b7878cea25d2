"""Clients for a keras-nmt SavedModel served by TensorFlow Serving (see docs/serving.md): REST
with the standard library only, gRPC through tensorflow-serving-api (`keras-nmt[serving]`).

    client = ServingClient("NAME")       # GrpcServingClient: the same methods and results
    client.translate(["one two three"])  # [{"translation": "...", "score": -0.16}]
    client.nbest(["one two three"])      # [[("...", -0.16), ("...", -2.03), ...]]
    client.status(), client.metadata()   # TF Serving's version states and signature defs

    python -m keras_nmt.serving_client --model NAME "one two three"  # a translation a line
    python -m keras_nmt.serving_client --model NAME --nbest --grpc < input.txt
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

# The export's input and signature names (`keras_nmt.exporting.format` imports TensorFlow).
INPUT = "text"
DEFAULT_SIGNATURE = "serving_default"
NBEST_SIGNATURE = "translate_nbest"


class ServingError(Exception):
    """A request the server refused or could not answer. `message` is the server's text,
    `status` the HTTP status (REST) and `code` the gRPC status name, e.g. "NOT_FOUND" (both
    None when the server could not be reached over REST); `url` is where the request went."""

    def __init__(self, message: str, url: str, status: int | None = None, code: str | None = None):
        prefix = f"HTTP {status}: " if status else f"{code}: " if code else ""
        super().__init__(f"{prefix}{message} ({url})")
        self.message, self.url, self.status, self.code = message, url, status, code


@dataclasses.dataclass
class _Client:
    """What both clients share: the model's address and what `translate` calls by default."""

    model: str
    host: str = "localhost"
    port: int | None = None  # None: TF Serving's, 8501 for REST and 8500 for gRPC
    version: int | None = None  # None: the latest
    signature: str = DEFAULT_SIGNATURE
    timeout: float = 60.0  # seconds per request

    def translate(self, sentences: list[str], signature: str | None = None) -> list[dict]:
        """One dict of the signature's outputs per sentence, e.g. `{"translation": str,
        "score": float}`; `[]` for `[]` (sent to no server)."""
        sentences = _checked(sentences)
        return self._predict(sentences, signature or self.signature) if sentences else []

    def nbest(self, sentences: list[str], n: int | None = None) -> list[list[tuple[str, float]]]:
        """Per sentence, the `(translation, score)` hypotheses of `translate_nbest`, best first
        (at most `n`). A hypothesis that does not exist (e.g. for "") scores -inf."""
        rows = self.translate(sentences, NBEST_SIGNATURE)
        return [list(zip(row["translations"], row["scores"]))[:n] for row in rows]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ServingClient(_Client):
    """One model of a TF Serving server over REST: `url` is
    `http://HOST:PORT/v1/models/MODEL[/versions/VERSION]`."""

    @property
    def url(self) -> str:
        model = urllib.parse.quote(self.model, safe="")
        url = f"http://{self.host}:{self.port or 8501}/v1/models/{model}"
        return url if self.version is None else f"{url}/versions/{int(self.version)}"

    def status(self) -> dict:
        """`{"model_version_status": [{"version": "1", "state": "AVAILABLE", ...}]}`."""
        return self._request(self.url)

    def metadata(self) -> dict:
        """`{"model_spec": ..., "metadata": {"signature_def": {"signature_def": {NAME: ...}}}}`."""
        return self._request(self.url + "/metadata")

    def _predict(self, sentences: list[str], signature: str) -> list[dict]:
        body = {"signature_name": signature, "instances": [{INPUT: s} for s in sentences]}
        return self._request(self.url + ":predict", body)["predictions"]

    def _request(self, url: str, body: dict | None = None):
        """GET `url`, or POST `body` to it; the JSON answer (json reads TF Serving's NaN,
        Infinity and -Infinity)."""
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # TF Serving's body is {"error": "..."}
            with error:
                payload = error.read().decode("utf-8", errors="replace")
            try:
                message = json.loads(payload)["error"]
            except (ValueError, KeyError, TypeError):
                message = payload[:200] or error.reason
            raise ServingError(message, url, status=error.code) from None
        except OSError as error:  # refused, unresolved, timed out
            reason = getattr(error, "reason", error)
            raise ServingError(f"cannot reach the server: {reason}", url) from None


@dataclasses.dataclass
class GrpcServingClient(_Client):
    """One model of a TF Serving server over gRPC (`PredictionService`, `ModelService`) at
    `url` (`HOST:PORT`); `close()` it, or use it in a `with` block."""

    def __post_init__(self):
        # The package's one function-level import: tensorflow-serving-api is an optional extra
        # and imports TensorFlow, which the REST client does without.
        try:
            import grpc
            import tensorflow as tf
            from google.protobuf.json_format import MessageToDict
            from tensorflow_serving.apis import (
                get_model_metadata_pb2,
                get_model_status_pb2,
                model_service_pb2_grpc,
                predict_pb2,
                prediction_service_pb2_grpc,
            )
        except ImportError as error:
            raise ImportError(f"gRPC needs pip install 'keras-nmt[serving]': {error}") from None
        self._grpc, self._tf, self._to_dict = grpc, tf, MessageToDict
        self._predict_request = predict_pb2.PredictRequest
        self._metadata_request = get_model_metadata_pb2.GetModelMetadataRequest
        self._status_request = get_model_status_pb2.GetModelStatusRequest
        self.url = f"{self.host}:{self.port or 8500}"
        # gRPC's default 4 MB limit on answers would cap `translate_attention` batches.
        self._channel = grpc.insecure_channel(self.url, [("grpc.max_receive_message_length", -1)])
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def status(self) -> dict:
        """`ModelService/GetModelStatus`, as `ServingClient.status` returns it."""
        request = self._status_request(model_spec=self._spec(""))
        return self._dict(self._call(self._models.GetModelStatus, request))

    def metadata(self) -> dict:
        """`PredictionService/GetModelMetadata`, as `ServingClient.metadata` returns it."""
        request = self._metadata_request(
            model_spec=self._spec(""), metadata_field=["signature_def"]
        )
        metadata = self._dict(self._call(self._predictions.GetModelMetadata, request))
        metadata["metadata"]["signature_def"].pop("@type")  # of the packed Any; REST has none
        return metadata

    def _predict(self, sentences: list[str], signature: str) -> list[dict]:
        request = self._predict_request(model_spec=self._spec(signature))
        request.inputs[INPUT].CopyFrom(self._tf.make_tensor_proto(sentences, self._tf.string))
        response = self._call(self._predictions.Predict, request)
        # output name -> nested lists, batch first
        outputs = {
            k: _decoded(self._tf.make_ndarray(v).tolist()) for k, v in response.outputs.items()
        }
        return [{k: v[i] for k, v in outputs.items()} for i in range(len(sentences))]

    def _spec(self, signature: str) -> dict:
        spec = {"name": self.model, "signature_name": signature}
        return spec if self.version is None else {**spec, "version": {"value": int(self.version)}}

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as error:
            message, code = error.details() or str(error), error.code().name
            raise ServingError(message, self.url, code=code) from None

    def _dict(self, message) -> dict:
        # As TF Serving's REST API writes its answers: proto field names, defaults included.
        return self._to_dict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )


def _checked(sentences) -> list[str]:
    """`sentences` as a list, or a TypeError naming the first one that is not a str."""
    if isinstance(sentences, (str, bytes)):
        raise TypeError(f"sentences: expected a list of str, got a {type(sentences).__name__}")
    sentences = list(sentences)
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise TypeError(f"sentences[{index}]: expected str, got {type(sentence).__name__}")
    return sentences


def _decoded(value):
    """`value` with every bytes in its nested lists decoded from UTF-8."""
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        "python -m keras_nmt.serving_client",
        description="Translate with a model TF Serving serves.",
    )
    parser.add_argument(
        "sentences", nargs="*", metavar="SENTENCE", help="default: one per stdin line"
    )
    parser.add_argument("--model", required=True, help="the model name the server serves")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, help="default 8501 (REST), 8500 with --grpc")
    parser.add_argument("--grpc", action="store_true", help="gRPC (needs tensorflow-serving-api)")
    parser.add_argument("--version", type=int, help="a model version (default: the latest)")
    parser.add_argument("--signature", default=DEFAULT_SIGNATURE, help="default: %(default)s")
    parser.add_argument("--nbest", action="store_true", help="print INDEX ||| TEXT ||| SCORE")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per request")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size: expected a positive integer, got {args.batch_size}")
    kind = GrpcServingClient if args.grpc else ServingClient
    options = (args.model, args.host, args.port, args.version, args.signature, args.timeout)
    lines = iter(args.sentences or (line.rstrip("\r\n") for line in sys.stdin))
    index = 0
    try:
        with kind(*options) as client:
            while batch := list(itertools.islice(lines, args.batch_size)):
                if args.nbest or args.signature == NBEST_SIGNATURE:
                    for hypotheses in client.nbest(batch):
                        for text, score in hypotheses:
                            print(f"{index} ||| {text} ||| {score:.4f}")
                        index += 1
                else:
                    print("\n".join(outputs["translation"] for outputs in client.translate(batch)))
                sys.stdout.flush()
    except (ServingError, ImportError, ValueError) as error:  # ValueError: text not Unicode
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(encoding="utf-8")  # translations are UTF-8 whatever the locale
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")
    sys.exit(main())
