import hashlib
import io
import signal
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import ROOT
from torchstages.deploy.predict import predict
from torchstages.deploy.readers import reader_for
from torchstages.deploy.runtime import load_runner
from torchstages.deploy.serve import Limits, create_app


@pytest.fixture(scope="module")
def runner(deployed):
    return load_runner(deployed / "export/model.onnx")


@pytest.fixture(scope="module")
def client(runner):
    with TestClient(create_app(runner, Limits(max_request_bytes=50_000, max_images=4))) as c:
        yield c


def files_of(deployed: Path, n: int) -> list[Path]:
    return sorted((deployed / "raw").glob("class*/*.png"))[:: 36 // n][:n]


def expected(runner, files: list[Path], k: int) -> list[list[tuple[str, float]]]:
    """What `torchstages predict` answers for the same files."""
    reader = reader_for(runner.metadata)
    return [r.top for r in predict(runner, reader, [str(f) for f in files], k)]


def answer_tops(body) -> list[list[tuple[str, float]]]:
    return [[(t["class"], t["probability"]) for t in p["top"]] for p in body["predictions"]]


def test_health_metadata_and_docs(client, runner, deployed):
    assert client.get("/health").json() == {"status": "ok"}
    meta = client.get("/metadata").json()
    model = deployed / "export/model.onnx"
    assert meta["model_version"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert meta["classes"] == runner.classes and meta["kind"] == "images"
    assert meta["format"] == "onnx" and meta["formats"] == ["onnx", "onnx-int8", "pt2"]
    assert meta["inputs"][0]["shape"] == [None, 1, 8, 8]
    assert meta["preprocessing"]["image_size"] == [8, 8]
    assert set(meta["limits"]) == {"max_request_bytes", "max_images", "max_pixels", "top_k"}
    assert meta["limits"]["max_images"] == 4
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_predict_answers_each_part_in_order_as_predict_does(client, runner, deployed):
    files = files_of(deployed, 3)
    parts = [("files", (f.name, f.read_bytes(), "image/png")) for f in files]
    body = client.post("/predict", files=parts, params={"top_k": 2}).json()
    assert body["model_version"] == runner.version()
    assert [p["part"] for p in body["predictions"]] == [
        f"files[{i}] ({f.name})" for i, f in enumerate(files)
    ]
    want = expected(runner, files, 2)
    for got, exp in zip(answer_tops(body), want, strict=True):
        assert [c for c, _ in got] == [c for c, _ in exp]
        assert [p for _, p in got] == pytest.approx([p for _, p in exp], abs=1e-6)
    one = client.post("/predict", files=parts[:1]).json()  # default top_k 5, capped at 3 classes
    assert len(one["predictions"]) == 1 and len(one["predictions"][0]["top"]) == 3


def test_bad_parts_are_4xx_json_naming_the_part(client, deployed):
    good = files_of(deployed, 1)[0].read_bytes()
    for bad, reason in [
        (b"just some text", "not an image (starts with b'just som')"),  # as the split stage says
        (b"<!DOCTYPE html><html>", "an HTML or XML page, not an image (a failed download?)"),
        (good[:60], "cannot decode"),
    ]:
        parts = [("files", ("a.png", good)), ("files", ("b.png", bad))]
        response = client.post("/predict", files=parts)
        assert response.status_code == 400
        assert response.json()["part"] == "files[1] (b.png)"
        assert reason in response.json()["error"]
        assert "BytesIO" not in response.json()["error"]
    missing = client.post("/predict", data={"x": "1"})
    assert missing.status_code == 422 and "files" in missing.json()["error"]
    too_many = client.post("/predict", files=[("files", ("a.png", good))] * 5)
    assert too_many.status_code == 413 and "at most 4" in too_many.json()["error"]
    zero = client.post("/predict", files=[("files", ("a.png", good))], params={"top_k": 0})
    assert zero.status_code == 422 and "top_k" in zero.json()["error"]


def test_corrupt_files_of_every_format_are_400_never_500(client, deployed):
    png = files_of(deployed, 1)[0].read_bytes()
    jpeg = io.BytesIO()
    Image.new("RGB", (20, 20)).save(jpeg, "JPEG")
    variants = [
        b"",
        png[:30],
        png[:8] + b"\0" * 200,
        png.replace(b"IDAT", b"IDAX"),
        jpeg.getvalue()[:100],
        b"\xff\xd8\xff" + bytes(range(256)) * 4,
        b"GIF89a" + b"\x01" * 50,
        b"II*\x00" + b"\xff" * 64,
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 32,
    ]
    for i, data in enumerate(variants):
        response = client.post("/predict", files=[("files", (f"v{i}", data))])
        assert response.status_code == 400, (i, response.text)
        assert response.json()["part"] == f"files[0] (v{i})"


def test_too_large_bodies_are_413_with_or_without_content_length(client):
    big = ("files", ("big.png", b"\0" * 60_000))
    response = client.post("/predict", files=[big])
    assert response.status_code == 413 and "over 50,000 bytes" in response.json()["error"]

    head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
    body = head + b"\0" * 60_000 + b"\r\n--b--\r\n"

    def chunks():  # no Content-Length: counted while it streams
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    multipart = {"content-type": "multipart/form-data; boundary=b"}
    streamed = client.post("/predict", content=chunks(), headers=multipart)
    assert streamed.status_code == 413 and "over 50,000 bytes" in streamed.json()["error"]
    broken = client.post("/predict", content=b"--b\r\nnonsense", headers=multipart)
    assert broken.status_code in (400, 422) and broken.json()["error"]  # never a 500


def test_decompression_bomb_is_413_before_decoding(runner):
    bomb = io.BytesIO()
    Image.new("L", (4000, 4000)).save(bomb, "PNG")  # 16 megapixels in a few KB
    photo = io.BytesIO()
    Image.new("L", (4000, 4000)).save(photo, "JPEG")  # the same size, decoded at 1/8: 500x500
    with TestClient(create_app(runner, Limits(max_pixels=1_000_000))) as c:
        response = c.post("/predict", files=[("files", ("bomb.png", bomb.getvalue()))])
        big_photo = c.post("/predict", files=[("files", ("photo.jpg", photo.getvalue()))])
    assert response.status_code == 413
    assert response.json() == {
        "error": "files[0] (bomb.png): 4000x4000 is 16,000,000 pixels to decode, over the limit "
        "of 1,000,000",
        "part": "files[0] (bomb.png)",
    }
    # the limit counts decoded pixels, as build-dataset's does: a large JPEG is no bomb
    assert big_photo.status_code == 200, big_photo.text


def health_while_blocked(model: Path, **request) -> int:
    """POST /predict ``request`` to a service whose model is held mid-batch, check that /health
    answers meanwhile, then let the batch finish; the /predict status."""
    release, started = threading.Event(), threading.Event()
    slow = load_runner(model)
    run = slow.run

    def blocking_run(batch):
        started.set()
        release.wait(30)
        return run(batch)

    slow.run = blocking_run
    with TestClient(create_app(slow)) as c:
        result = {}
        worker = threading.Thread(target=lambda: result.update(r=c.post("/predict", **request)))
        worker.start()
        assert started.wait(30)
        assert c.get("/health").status_code == 200
        assert worker.is_alive()  # the batch is still running
        release.set()
        worker.join(30)
    return result["r"].status_code


def test_health_answers_while_inference_runs(deployed):
    """Inference is off the event loop: /health answers while a batch is still computing."""
    good = files_of(deployed, 1)[0].read_bytes()
    model = deployed / "export/model.onnx"
    assert health_while_blocked(model, files=[("files", ("a", good))]) == 200


@pytest.mark.slow
def test_real_uvicorn_burst_on_loopback(deployed, runner, monkeypatch):
    """500 requests, 8 at a time, to a real `torchstages serve` on 127.0.0.1: every answer
    right, none failed; SIGTERM then stops it cleanly."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from serve_burst import burst, running_server, uploads

    files = files_of(deployed, 12)
    want = expected(runner, files, 3)
    payloads = [uploads([(f.name, f.read_bytes())]) for f in files]
    with running_server(deployed / "export/model.onnx", src=ROOT / "src") as server:
        start = time.monotonic()
        answers, _ = burst(server.url, payloads, requests=500, concurrency=8)
        assert time.monotonic() - start < 300
    assert [a.status for a in answers] == [200] * 500
    for i, a in enumerate(answers):
        got = answer_tops(a.body)[0]
        exp = want[i % len(files)]
        assert [c for c, _ in got] == [c for c, _ in exp], i
        assert [p for _, p in got] == pytest.approx([p for _, p in exp], abs=1e-6)
    # a graceful stop: uvicorn finished the server, then re-raised SIGTERM as its exit status
    assert "Finished server process" in server.log
    assert server.exit_code == -signal.SIGTERM


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight(deployed, runner, monkeypatch):
    """SIGTERM while a request's body is still arriving: it is answered, then the server exits."""
    import httpx

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from serve_burst import running_server

    image = files_of(deployed, 1)[0]
    body = (
        b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
        + image.read_bytes()
        + b"\r\n--b--\r\n"
    )
    with running_server(deployed / "export/model.onnx", src=ROOT / "src") as server:

        def slow_body():
            yield body[:40]
            # the headers and first bytes are sent; give the server a moment to take the request
            # up (a SIGTERM before that closes the connection unanswered, as it should)
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)  # the request is in flight now
            time.sleep(1.0)
            yield body[40:]

        response = httpx.post(
            f"{server.url}/predict",
            content=slow_body(),
            headers={"content-type": "multipart/form-data; boundary=b"},
            timeout=30,
        )
        assert server.process.wait(30) == -signal.SIGTERM
    assert response.status_code == 200
    assert answer_tops(response.json())[0][0][0] == expected(runner, [image], 1)[0][0][0]
    assert "Finished server process" in server.log
