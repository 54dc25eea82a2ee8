"""`aelab explore`: the explorer's answers on tiny trained runs of every kind, bad requests
refused in one line with the server still answering, a bounded load on the loopback
address, the page driven in a real browser, and the command itself."""

import base64
import http.client
import json
import math
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest
import torch

import browser
from aelab import config, registry
from aelab.explore.server import make_server
from aelab.explore.session import Explorer
from aelab.training import train
from aelab.runs.rundir import RunDir
from conftest import channel_cnn_toml, tiny, write_photos


def _trained(path, cfg, data):
    run = RunDir.create(path, cfg)
    threads = torch.get_num_threads()
    train.fit(cfg, run, data, train.Options(progress=False))
    torch.set_num_threads(threads)  # a module's fixture: the per-test restore in conftest does not see it
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_data):
    """Tiny trained runs: a CVAE with a learned prior per label, an AE, a VAE with a 2-D code on real digits; a CNN AE with a
    4x4x4 code sent through a noisy channel, on a folder of photos."""
    root = tmp_path_factory.mktemp("explore")
    made = {"cvae": _trained(root / "cvae", tiny("cvae", model={"prior": {"name": "conditional"}},
                                                train={"epochs": 2}), small_data),
            "ae": _trained(root / "ae", tiny("ae", train={"epochs": 2}), small_data)}
    made["vae-2d"] = _trained(root / "vae-2d", tiny("vae", model={"latent_dim": 2}, train={"epochs": 2}),
                              small_data)
    made["vamp"] = _trained(root / "vamp", tiny("vae", model={"latent_dim": 6, "prior": {"name": "vamp", "components": 20}},
                                                train={"epochs": 2}), small_data)
    made["two-layer"] = _trained(root / "two-layer", tiny("vae", model={"latent_dim": 9, "latent": {
        "name": "two_layer", "hidden": [16]}}, train={"epochs": 2}), small_data)
    (root / "photos").mkdir()
    photos = write_photos(root / "photos", 20, (18, 22))  # 10 of the 40 are test images
    cfg = config.loads(channel_cnn_toml(photos, image_size=16, val_size=4, latent_dim=64, epochs=3, batch_size=8),
                       "channel.toml")
    made["channel"] = _trained(root / "channel", cfg, registry.build_data(cfg))
    return made


@pytest.fixture(scope="module")
def explorers(runs, small_data):
    return {k: Explorer(r, small_data if k != "channel" else None) for k, r in runs.items()}


class Served:
    def __init__(self, explorer):
        self.explorer = explorer
        self.server = make_server(explorer, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def ask(self, method, path, body=None, raw=None, headers=None):
        """(status, answer) of one request on a connection of its own."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        c.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, (json.loads(payload) if r.getheader("Content-Type") == "application/json" else payload)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def served(explorers):
    s = {k: Served(e) for k, e in explorers.items()}
    yield s
    for one in s.values():
        one.close()


def _pixels(b64, explorer):
    c, h, w = explorer.data.image_shape
    raw = base64.b64decode(b64)
    assert len(raw) == h * w * c
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(h, w, c)


@pytest.mark.parametrize("kind", ["cvae", "ae", "vae-2d", "channel", "vamp", "two-layer"])
def test_every_endpoint_answers_for_every_kind_of_run(served, kind):
    s = served[kind]
    e = s.explorer
    status, page = s.ask("GET", "/")
    assert status == 200 and b"aelab explore" in page and b"http" not in page.replace(b"http-equiv", b"")  # nothing from the network
    status, info = s.ask("GET", "/api/info")
    assert status == 200 and info["latent_dim"] == e.dim and info["kind"] == e.cfg.model.short
    assert info["settings"].startswith(e.cfg.model.short) and info["n_test"] == len(e.data.test)
    assert len(info["sliders"]) == min(8, e.dim)
    spread = [s_["variance"] for s_ in info["sliders"]]
    assert spread == sorted(spread, reverse=True) and spread[0] == pytest.approx(e.codes.var(0).max().item())
    status, plane = s.ask("GET", "/api/points" + ("" if e.dim <= 2 else "?axes=pca"))
    assert status == 200 and len(plane["x"]) == len(plane["labels"]) == len(e.data.test)
    a1, a2 = torch.tensor(plane["a1"]), torch.tensor(plane["a2"])
    assert a1.norm() == pytest.approx(1) and a2.norm() == pytest.approx(1) and abs(a1 @ a2) < 1e-6
    # the plane's coordinates are the codes' projections
    assert plane["x"][5] == pytest.approx(float((e.codes[5] - torch.tensor(plane["origin"], dtype=torch.float64))
                                                 @ a1.double()), abs=1e-3)
    status, dims = s.ask("GET", "/api/points?axes=1,0")
    assert status == 200 and dims["x"][:20] == pytest.approx(e.codes[:20, 1].tolist(), abs=1e-3)
    status, image = s.ask("GET", "/api/image?index=7")
    assert status == 200 and image["label"] == int(e.data.test.labels[7]) and len(image["code"]) == e.dim
    original = _pixels(image["image"], e)
    assert torch.equal(original, e.data.test.images[7].permute(1, 2, 0).cpu())
    body = {"z": image["code"], **({"label": image["label"]} if info["labels"] else {})}
    status, decoded = s.ask("POST", "/api/decode", body)
    assert status == 200 and decoded["image"] == image["reconstruction"]  # its code decodes to its reconstruction
    moved = [v + 2.0 for v in image["code"]]
    status, other = s.ask("POST", "/api/decode", {**body, "z": moved})
    assert status == 200 and other["image"] != decoded["image"]
    status, drawn = s.ask("POST", "/api/random", {"seed": 3, **({"label": 4} if info["labels"] else {})})
    assert status == 200 and len(drawn["z"]) == e.dim and all(math.isfinite(v) for v in drawn["z"])
    assert s.ask("POST", "/api/random", {"seed": 3, **({"label": 4} if info["labels"] else {})})[1] == drawn
    status, path = s.ask("POST", "/api/interpolate", {"from": 7, "to": 9, "steps": 5})
    assert status == 200 and len(path["images"]) == 5
    assert path["images"][0] == image["reconstruction"]  # the path starts at A's code (decoded with A's label)


def test_a_cvae_decodes_one_code_as_every_label_with_its_prior(served):
    s = served["cvae"]
    status, image = s.ask("GET", "/api/image?index=0")
    status, every = s.ask("POST", "/api/decode", {"z": image["code"], "label": 3, "all_labels": True})
    assert status == 200 and len(every["images"]) == 10 and len(set(every["images"])) == 10
    assert every["images"][3] == every["image"]
    # a draw of label y is m_y + s_y eps: the learned prior's mean for label y at seed-fixed noise
    prior = s.explorer.model.prior
    eps = torch.randn(1, s.explorer.dim, generator=torch.Generator().manual_seed(11))
    expected = prior(torch.tensor([6])).draw(eps)[0]
    status, drawn = s.ask("POST", "/api/random", {"seed": 11, "label": 6})
    assert torch.allclose(torch.tensor(drawn["z"], dtype=torch.float64), expected.double(), atol=1e-5)
    assert not torch.allclose(expected, eps[0], atol=1e-3)  # not N(0, I): the prior of label 6


def test_the_channel_adds_power_normalised_noise_and_reports_psnr(served):
    s = served["channel"]
    status, clean = s.ask("POST", "/api/channel", {"index": 2, "sigma": 0.0, "seed": 0})
    assert status == 200 and clean["psnr_db"] == clean["clean_psnr_db"] and clean["noisy"] == clean["clean"]
    assert s.explorer.codes[2].pow(2).mean().item() == pytest.approx(1.0, rel=1e-5)  # the code as the channel sends it
    status, loud = s.ask("POST", "/api/channel", {"index": 2, "sigma": 1.0, "seed": 0})
    assert status == 200 and loud["psnr_db"] < clean["psnr_db"] and loud["noisy"] != clean["noisy"]
    assert s.ask("POST", "/api/channel", {"index": 2, "sigma": 1.0, "seed": 0})[1] == loud  # seeded
    assert s.ask("POST", "/api/channel", {"index": 2, "sigma": 1.0, "seed": 1})[1]["noisy"] != loud["noisy"]
    status, info = s.ask("GET", "/api/info")
    assert info["channel_sigma"] == 0.1 and info["classes"] == ["cats", "dogs"]


BAD = [
    ("POST", "/api/decode", {"z": [0.0]}, 400, "z: must be a list of 4 numbers"),
    ("POST", "/api/decode", {"z": [0, 0, 0, "1"], "label": 0}, 400, "every entry must be a number"),
    ("POST", "/api/decode", None, 400, "NaN is not a number"),  # raw body below
    ("POST", "/api/decode", {"z": [0, 0, 0, 1e300], "label": 0}, 400, "finite and at most"),
    ("POST", "/api/decode", {"z": [0, 0, 0, 0], "label": 10}, 400, "label: 10 is out of range 0-9"),
    ("POST", "/api/decode", {"z": [0, 0, 0, 0], "label": True}, 400, "label: must be a whole number"),
    ("POST", "/api/decode", {"z": [0, 0, 0, 0], "file": "/etc/passwd"}, 400, "unknown field 'file'"),
    ("POST", "/api/decode", [1, 2], 400, "must be a JSON object"),
    ("POST", "/api/interpolate", {"from": 0, "to": 10000}, 400, "to: 10000 is out of range 0-9999"),
    ("POST", "/api/interpolate", {"from": 0, "to": 1, "steps": 1000}, 400, "steps: 1000 is out of range 2-32"),
    ("POST", "/api/random", {"seed": -1}, 400, "seed: -1 is out of range"),
    ("POST", "/api/channel", {"index": 0, "sigma": 0.1}, 400, "has no channel"),
    ("GET", "/api/image?index=-1", None, 400, "index: -1 is out of range 0-9999"),
    ("GET", "/api/image?index=../../etc/passwd", None, 400, "index: must be a whole number"),
    ("GET", "/api/image", None, 400, "index: missing"),
    ("GET", "/api/points?axes=0,99", None, 400, "dimension 99 is out of range 0-3"),
    ("GET", "/api/points?axes=x;rm", None, 400, "neither 'pca' nor two dimensions"),
    ("GET", "/../../etc/passwd", None, 404, "no such address"),
    ("GET", "/config.toml", None, 404, "no such address"),
    ("GET", "/api/decode", None, 405, "takes POST"),
    ("POST", "/api/info", {}, 405, "takes GET"),
]


@pytest.mark.parametrize("method,path,body,status,says", BAD, ids=[f"{b[1]}-{b[4][:24]}" for b in BAD])
def test_a_bad_request_gets_a_4xx_and_one_line_and_the_server_goes_on(served, method, path, body, status, says):
    s = served["cvae"]
    raw = b'{"z": [NaN, 0, 0, 0]}' if says.startswith("NaN") else None
    got, answer = s.ask(method, path, body, raw=raw)
    assert got == status and says in answer["error"] and "\n" not in answer["error"]
    assert s.ask("GET", "/api/info")[0] == 200


def test_malformed_and_oversized_bodies(served):
    s = served["ae"]
    for raw, says in ((b"{", "not JSON"), (b"\xff\xfe", "not JSON"), (b'{"z": Infinity}', "Infinity is not a number")):
        got, answer = s.ask("POST", "/api/decode", raw=raw)
        assert got == 400 and says in answer["error"], raw
    got, answer = s.ask("POST", "/api/decode", raw=b"x", headers={"Content-Length": str(10 << 20)})
    assert got == 413 and "at most" in answer["error"]
    got, answer = s.ask("POST", "/api/decode", raw=b"[]", headers={"Content-Length": "two"})
    assert got == 400 and "Content-Length" in answer["error"]
    assert s.ask("GET", "/api/info")[0] == 200


def test_two_hundred_requests_from_eight_clients_are_all_answered(served):
    """A bounded load on the loopback address: 8 threads, 25 decodes each, one connection per
    request; prints the latencies (pytest -s shows them)."""
    s = served["cvae"]
    codes = s.explorer.codes[:200].tolist()
    latencies, statuses = [], []

    def client(k):
        for i in range(k * 25, k * 25 + 25):
            start = time.perf_counter()
            status, _ = s.ask("POST", "/api/decode", {"z": codes[i], "label": i % 10, "all_labels": i % 2 == 0})
            latencies.append(time.perf_counter() - start)
            statuses.append(status)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses.count(200) == 200
    ms = sorted(1000 * v for v in latencies)
    print(f"200 decodes from 8 clients: median {statistics.median(ms):.1f} ms, 95th percentile {ms[189]:.1f} ms")
    assert ms[189] < 2000


def test_the_page_in_a_real_browser_decodes_on_drag_and_slider(served, tmp_path):
    why = browser.missing()
    if why:
        pytest.skip(why)
    result = browser.drive_explorer(served["cvae"].url, tmp_path / "explore.png")
    assert result["errors"] == []
    assert result["after_drag"] != result["start"] and result["after_slider"] != result["after_drag"]
    assert result["labels_shown"] == 10 and result["decodes"] >= 3
    assert result["latency_ms"] < 1000


def test_the_command_prints_its_address_serves_and_stops_on_ctrl_c(runs):
    proc = subprocess.Popen([sys.executable, "-m", "aelab", "explore", str(runs["vae-2d"].path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("exploring at http://127.0.0.1:") and "Ctrl-C" in line
        port = int(line.split(":")[2].split("/")[0])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/api/info")
        info = json.loads(c.getresponse().read())
        assert info["latent_dim"] == 2 and info["name"] == "vae-2d"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "VAE with a 2-number code" in err


def test_the_command_refuses_what_it_cannot_serve(runs, tmp_path, capsys):
    from aelab.cli import main

    assert main(["explore", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"aelab: error: {tmp_path}: not a run directory (no config.toml)"
    assert main(["explore", str(runs["ae"].path), "--port", "70000"]) == 2
    assert "out of range" in capsys.readouterr().err
