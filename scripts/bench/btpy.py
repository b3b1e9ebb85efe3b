#!/usr/bin/python3
"""libtorrent helpers for scripts/bench (run with /usr/bin/python3, which has
python3-libtorrent 2.0.8).

  btpy.py strip IN.torrent OUT.torrent [--no-announce]
      copy a torrent without its url-list (BEP 19 web seeds), optionally
      without trackers; the infohash does not change (both live outside info).
  btpy.py leech IN.torrent SAVE_DIR HOST:PORT TIMEOUT_S
      download IN.torrent with libtorrent from exactly one peer (connect_peer,
      no tracker, no web seed, no DHT/LSD/UPnP) and print JSON:
      {"seconds": add->finished, "bytes": payload bytes downloaded, ...}
"""
import json
import os
import sys
import time

import libtorrent as lt


def load_stripped(path, no_announce):
    with open(path, "rb") as f:
        e = lt.bdecode(f.read())
    for k in (b"url-list", b"httpseeds"):
        e.pop(k, None)
    if no_announce:
        e.pop(b"announce", None)
        e.pop(b"announce-list", None)
    return e


def strip(args):
    src, dst = args[0], args[1]
    e = load_stripped(src, "--no-announce" in args[2:])
    with open(dst, "wb") as f:
        f.write(lt.bencode(e))


def leech(args):
    path, save, peer, timeout = args[0], args[1], args[2], float(args[3])
    host, port = peer.rsplit(":", 1)
    ti = lt.torrent_info(load_stripped(path, True))
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    })
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save
    t0 = time.monotonic()
    h = ses.add_torrent(atp)
    h.connect_peer((host, int(port)))
    finished = None
    first_byte = None
    deadline = t0 + timeout
    redial = t0 + 2
    while finished is None and time.monotonic() < deadline:
        ses.wait_for_alert(50)
        # A failed connect is not retried by libtorrent on its own soon
        # enough for a benchmark: dial again while nothing arrives.
        if first_byte is None and time.monotonic() > redial and not h.get_peer_info():
            h.connect_peer((host, int(port)))
            redial = time.monotonic() + 2
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_finished_alert):
                finished = time.monotonic()
            elif isinstance(a, lt.torrent_error_alert):
                print(json.dumps({"error": a.message()}))
                sys.exit(1)
        if first_byte is None and h.status().total_payload_download > 0:
            first_byte = time.monotonic()
    st = h.status()
    cpu = os.times()
    if finished is None:
        print(json.dumps({"error": "timeout", "progress": st.progress}))
        sys.exit(1)
    print(json.dumps({
        "seconds": finished - t0,
        "first_byte_s": (first_byte - t0) if first_byte else None,
        "bytes": st.total_payload_download,
        "wanted": st.total_wanted,
        "libtorrent": lt.__version__,
        "cpu_s": cpu.user + cpu.system,
    }))


if __name__ == "__main__":
    {"strip": strip, "leech": leech}[sys.argv[1]](sys.argv[2:])
