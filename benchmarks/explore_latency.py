"""How fast `aelab explore` answers on a trained run: one client's decodes in a row, then a
bounded load of N requests from C concurrent clients, all on the loopback address; and,
where headless Chromium is there, the page in a real browser (event to image, as the page
itself measures it) with a screenshot.

    .venv/bin/python benchmarks/explore_latency.py runs/main/runs/cvae [--requests 200 --clients 8] [--shot docs/explore.png]

Prints one line per measurement and a last line of JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path

from aelab.explore.server import make_server
from aelab.explore.session import Explorer
from aelab.runs.rundir import RunDir


def _decode(port: int, body: dict) -> tuple[int, float]:
    start = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/api/decode", json.dumps(body).encode(), {"Content-Type": "application/json"})
    status = c.getresponse().status
    c.close()
    return status, 1000 * (time.perf_counter() - start)


def _summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 1), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
            "max_ms": round(ms[-1], 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--shot", help="also drive the page in headless Chromium and save a screenshot here")
    args = p.parse_args()
    explorer = Explorer(RunDir.open(args.run))
    server = make_server(explorer, "127.0.0.1", 0)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    codes = explorer.codes.tolist()
    body = lambda i: {"z": codes[i % len(codes)], **({"label": i % explorer.labelled, "all_labels": True}  # noqa: E731
                                                      if explorer.labelled else {})}
    result = {"run": args.run, "latent_dim": explorer.dim}
    one = [_decode(port, body(i))[1] for i in range(50)]
    result["one_client"] = _summary(one)
    print(f"one client, 50 decodes in a row: median {result['one_client']['median_ms']} ms, "
          f"95th percentile {result['one_client']['p95_ms']} ms")
    answers: list[tuple[int, float]] = []
    per = args.requests // args.clients

    def client(k: int) -> None:
        for i in range(k * per, (k + 1) * per):
            answers.append(_decode(port, body(i)))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = sum(s == 200 for s, _ in answers)
    result["load"] = {"requests": len(answers), "answered_200": ok, "clients": args.clients,
                      "seconds": round(wall, 2), **_summary([ms for _, ms in answers])}
    print(f"{len(answers)} requests from {args.clients} clients: {ok} answered, median {result['load']['median_ms']} ms, "
          f"95th percentile {result['load']['p95_ms']} ms, {wall:.1f} s in all")
    if args.shot:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        import browser

        why = browser.missing()
        if why:
            print(f"browser: skipped ({why})")
        else:
            seen = browser.drive_explorer(f"http://127.0.0.1:{port}/", Path(args.shot), tour=True)
            result["browser"] = {"latency_ms": seen["latency_ms"], "decodes": seen["decodes"], "errors": seen["errors"]}
            print(f"browser: last event to image {seen['latency_ms']} ms over {seen['decodes']} decodes, "
                  f"{len(seen['errors'])} console errors; screenshot {args.shot}")
    server.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
