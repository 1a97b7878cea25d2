"""keras_nmt.serving_client against the toy export's real signatures, served in process.

Two small servers stand for TF Serving, speaking its documented wire formats for one model,
"toy", version 1: an `http.server` handler for the REST API (row-format JSON, `{"error": ...}`
with an HTTP status) and a `grpc.server` with tensorflow-serving-api's servicers (outputs made
by `tf.make_tensor_proto`). Both call the loaded SavedModel's signatures; every expected
translation comes from `SavedModelTranslator` on the same export.
"""

from __future__ import annotations

import concurrent.futures
import functools
import http.server
import json
import math
import pathlib
import re
import socket
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_nmt import serving_client
from keras_nmt.exporting.format import SAVED_MODEL_INPUT, SAVED_MODEL_SIGNATURES
from keras_nmt.inference.saved_model import SavedModelTranslator
from keras_nmt.serving_client import GrpcServingClient, ServingClient, ServingError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SENTENCES = ["one two three", "five six", "eight seven one four", "", "one 😀 two", "Ünï 中文"]
STATUS = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}
# TF Serving's messages for an unknown signature, over REST and over gRPC.
REST_NO_SIGNATURE = 'Serving signature name: "translate_nope" not found in signature def'
GRPC_NO_SIGNATURE = 'Serving signature key "translate_nope" not found.'


def to_dict(message) -> dict:
    """A proto as TF Serving's REST API writes it: field names, defaults included."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def plain(value):
    """An output array as JSON values: nested lists, strings decoded from UTF-8."""
    value = value.tolist() if isinstance(value, np.ndarray) else value
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value


@pytest.fixture(scope="module")
def translator(saved_model_export):
    return SavedModelTranslator.load(saved_model_export)


@pytest.fixture(scope="module")
def signature_defs(saved_model_export):
    saved_model = saved_model_pb2.SavedModel.FromString(
        (saved_model_export / "saved_model.pb").read_bytes()
    )
    return get_model_metadata_pb2.SignatureDefMap(
        signature_def=dict(saved_model.meta_graphs[0].signature_def)
    )


@pytest.fixture(scope="module")
def rest_port(translator, signature_defs):
    """TF Serving's REST API for model "toy", version 1, on 127.0.0.1."""
    signatures = translator.loaded.signatures
    metadata = {
        "model_spec": {"name": "toy", "signature_name": "", "version": "1"},
        "metadata": {"signature_def": to_dict(signature_defs)},
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            route = self.route()
            if route in ("", "/metadata"):
                self.answer(200, metadata if route else STATUS)

        def do_POST(self):
            if self.route() != ":predict":
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name = body.get("signature_name", "serving_default")
            if name not in signatures:
                error = REST_NO_SIGNATURE.replace("translate_nope", name)
                return self.answer(400, {"error": error})
            text = tf.constant([instance[SAVED_MODEL_INPUT] for instance in body["instances"]])
            columns = {k: plain(v.numpy()) for k, v in signatures[name](text=text).items()}
            rows = [dict(zip(columns, row)) for row in zip(*columns.values())]
            self.answer(200, {"predictions": rows})

        def route(self) -> str | None:
            """What follows the model's URL; None (answered 404) for another model or version."""
            match = re.fullmatch(r"/v1/models/toy(?:/versions/1)?(|:predict|/metadata)", self.path)
            if match is None:
                self.answer(404, {"error": f"Servable not found for request: {self.path}"})
            return match and match[1]

        def answer(self, status: int, document: dict) -> None:
            payload = json.dumps(document).encode("utf-8")  # -inf as -Infinity, as TF Serving
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def grpc_port(translator, signature_defs):
    """TF Serving's gRPC PredictionService and ModelService for model "toy", version 1."""
    signatures = translator.loaded.signatures

    def check(spec, context) -> None:
        if spec.name != "toy" or (spec.HasField("version") and spec.version.value != 1):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")

    class Predictions(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            check(request.model_spec, context)
            name = request.model_spec.signature_name or "serving_default"
            if name not in signatures:
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    GRPC_NO_SIGNATURE.replace("translate_nope", name),
                )
            text = tf.constant(tf.make_ndarray(request.inputs[SAVED_MODEL_INPUT]))
            response = predict_pb2.PredictResponse()
            for key, value in signatures[name](text=text).items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

        def GetModelMetadata(self, request, context):
            check(request.model_spec, context)
            response = get_model_metadata_pb2.GetModelMetadataResponse(
                model_spec={"name": "toy", "version": {"value": 1}}
            )
            response.metadata["signature_def"].Pack(signature_defs)
            return response

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):
            check(request.model_spec, context)
            return json_format.ParseDict(STATUS, get_model_status_pb2.GetModelStatusResponse())

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Predictions(), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


@pytest.fixture(params=["rest", "grpc"])
def connect(request):
    """`connect(**options)`: a client of model "toy" over the parameter's protocol; `port=0`
    is a port nothing listens on."""
    kind = {"rest": ServingClient, "grpc": GrpcServingClient}[request.param]
    port = request.getfixturevalue(f"{request.param}_port")
    clients = []

    def connect(model="toy", port=port, **options):
        clients.append(kind(model, "127.0.0.1", port or free_port(), **options))
        return clients[-1]

    connect.protocol = request.param
    yield connect
    for client in clients:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:  # nothing listens on it once the socket is closed
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def float32(values) -> np.ndarray:
    return np.asarray(values, np.float32)


@pytest.mark.parametrize("signature", ["serving_default", "translate_greedy"])
def test_translate_equals_the_saved_model_translator(connect, translator, signature):
    decoding = translator.with_decoding(beam_size=1 if signature == "translate_greedy" else None)
    assert decoding.signature == signature
    expected = [hypotheses[0] for hypotheses in decoding.translate_with_scores(SENTENCES)]
    results = connect(signature=signature).translate(SENTENCES)
    assert [sorted(result) for result in results] == [["score", "translation"]] * len(SENTENCES)
    assert [result["translation"] for result in results] == [text for text, _ in expected]
    scores = float32([result["score"] for result in results])
    assert np.array_equal(scores, float32([score for _, score in expected]))
    assert connect().translate(SENTENCES, signature) == results


def test_nbest_equals_the_saved_model_translator(connect, translator):
    n = translator.info["decode"]["n_best"]
    expected = translator.with_decoding(n_best=n).translate_with_scores(SENTENCES)
    results = connect().nbest(SENTENCES)
    assert [[text for text, _ in h] for h in results] == [[text for text, _ in h] for h in expected]
    assert np.array_equal(
        float32([[score for _, score in h] for h in results]),
        float32([[score for _, score in h] for h in expected]),
    )
    assert any(math.isinf(score) for h in results for _, score in h), "no -inf score carried"
    assert connect().nbest(SENTENCES, n=2) == [hypotheses[:2] for hypotheses in results]


def test_attention_outputs(connect, translator):
    expected = translator.alignment_batch(SENTENCES[:3])
    best = translator.translate(SENTENCES[:3])
    results = connect(signature="translate_attention").translate(SENTENCES[:3])
    assert [result["translation"] for result in results] == best
    for name in ("source_tokens", "target_tokens"):
        assert [result[name] for result in results] == plain(expected[name]), name
    attention = float32([result["attention"] for result in results])
    assert np.array_equal(attention, expected["attention"])


def test_status_and_metadata_describe_the_export(connect):
    client = connect()
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
    metadata = client.metadata()
    assert metadata["model_spec"]["name"] == "toy"
    signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
    for name, (_, outputs) in SAVED_MODEL_SIGNATURES.items():
        assert signature_defs[name]["method_name"] == "tensorflow/serving/predict"
        assert list(signature_defs[name]["inputs"]) == [SAVED_MODEL_INPUT]
        assert signature_defs[name]["inputs"][SAVED_MODEL_INPUT]["dtype"] == "DT_STRING"
        assert sorted(signature_defs[name]["outputs"]) == sorted(outputs)


def test_rest_and_grpc_return_the_same_status_and_metadata(rest_port, grpc_port):
    rest = ServingClient("toy", "127.0.0.1", rest_port)
    with GrpcServingClient("toy", "127.0.0.1", grpc_port) as grpc_client:
        assert grpc_client.status() == rest.status() == STATUS
        assert grpc_client.metadata() == rest.metadata()


def test_server_errors_carry_the_servers_message(connect):
    def raised(call) -> ServingError:
        with pytest.raises(ServingError) as caught:
            call()
        assert caught.value.message in str(caught.value)
        assert caught.value.url in str(caught.value)
        return caught.value

    error = raised(lambda: connect().translate(["one"], "translate_nope"))
    if connect.protocol == "rest":
        assert (error.status, error.code, error.message) == (400, None, REST_NO_SIGNATURE)
        assert str(error).startswith("HTTP 400: ")
    else:
        assert (error.status, error.code) == (None, "FAILED_PRECONDITION")
        assert error.message == GRPC_NO_SIGNATURE
    for client in (connect("nope"), connect(version=7)):
        for call in (functools.partial(client.nbest, ["one"]), client.status, client.metadata):
            error = raised(call)
            assert (error.status or error.code) in (404, "NOT_FOUND"), error
            assert error.message.startswith("Servable not found for request: "), error


def test_an_unreachable_server_raises_serving_error(connect):
    with pytest.raises(ServingError) as caught:
        connect(port=0, timeout=5).translate(["one"])
    assert caught.value.status is None
    if connect.protocol == "rest":
        assert caught.value.message.startswith("cannot reach the server: ")
    else:
        assert caught.value.code == "UNAVAILABLE"


def test_bad_input_is_refused_before_any_request(connect):
    """The client points at a port nothing listens on: a request would raise ServingError."""
    client = connect(port=0)
    with pytest.raises(TypeError, match="sentences: expected a list of str, got a str"):
        client.translate("one two")
    with pytest.raises(TypeError, match=r"sentences\[1\]: expected str, got bytes"):
        client.translate(["one", b"two"])
    with pytest.raises(TypeError, match=r"sentences\[0\]: expected str, got int"):
        client.nbest([1])
    assert client.translate([]) == [] and client.nbest([]) == []


def test_names_are_the_export_formats():
    assert serving_client.INPUT == SAVED_MODEL_INPUT
    assert {serving_client.DEFAULT_SIGNATURE, serving_client.NBEST_SIGNATURE} <= set(
        SAVED_MODEL_SIGNATURES
    )


def test_the_module_imports_only_the_standard_library():
    code = (
        "import sys, keras_nmt.serving_client\n"
        "heavy = ('grpc', 'google', 'keras', 'numpy', 'tensorflow', 'tensorflow_serving')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_grpc_without_the_serving_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'keras-nmt\[serving\]'"):
        GrpcServingClient("toy")
    assert serving_client.main(["--model", "toy", "--grpc", "one"]) == 1
    assert "pip install 'keras-nmt[serving]'" in capsys.readouterr().err


def nbest_lines(translator, sentences: list[str]) -> list[str]:
    n = translator.info["decode"]["n_best"]
    hypotheses = translator.with_decoding(n_best=n).translate_with_scores(sentences)
    return [
        f"{index} ||| {text} ||| {score:.4f}"
        for index, pairs in enumerate(hypotheses)
        for text, score in pairs
    ]


def test_script_reads_stdin_in_batches(rest_port, translator):
    lines = ["one two three", "", "five 😀 six"]
    command = [sys.executable, "-m", "keras_nmt.serving_client", "--model", "toy"]
    result = subprocess.run(
        [*command, "--port", str(rest_port), "--nbest", "--batch-size", "2"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == nbest_lines(translator, lines)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_script_translates_arguments_and_reports_errors(request, translator, capsys, protocol):
    port = str(request.getfixturevalue(f"{protocol}_port"))
    options = ["--model", "toy", "--port", port, *(["--grpc"] if protocol == "grpc" else [])]
    assert serving_client.main([*options, "one two", "", "five six"]) == 0
    assert capsys.readouterr().out.splitlines() == translator.translate(["one two", "", "five six"])
    assert serving_client.main([*options, "--signature", "translate_nbest", "one two"]) == 0
    assert capsys.readouterr().out.splitlines() == nbest_lines(translator, ["one two"])
    assert serving_client.main([*options, "--signature", "translate_nope", "one"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    message = GRPC_NO_SIGNATURE if protocol == "grpc" else REST_NO_SIGNATURE
    assert message in captured.err
