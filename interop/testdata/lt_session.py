#!/usr/bin/python3
"""Run one torrent in libtorrent on loopback until stdin closes.

Run with /usr/bin/python3 (Debian's python3-libtorrent). The session has DHT,
LSD, UPnP, NAT-PMP and uTP off and listens on 127.0.0.1 only. The torrent's
files live under --save: what is there is checked first, what is missing is
fetched from the torrent's tracker (and the peers given with --peer). With
--no-webseed the url-list is dropped, so web seeds cannot serve.

Output is one JSON object per line on stdout:
  {"event": "seeding", ...}  once every piece is verified and the torrent seeds
  {"event": "done", ...}     when stdin closes (or --timeout passes), with the
                             bytes exchanged per peer; "ok" is false on error
The process exits after "done"; its status is 0 only if it reached seeding.
"""

import argparse
import json
import sys
import threading
import time

import libtorrent as lt


STATES = lt.torrent_status.states
CHECKING = (STATES.checking_files, STATES.checking_resume_data, STATES.queued_for_checking)


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--infohash", required=True, help="expected v1 infohash, hex")
    ap.add_argument("--save", required=True, help="save_path")
    ap.add_argument("--peer", action="append", default=[], help="host:port to connect to")
    ap.add_argument("--no-webseed", action="store_true", help="drop the url-list")
    ap.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    args = ap.parse_args()

    start = time.monotonic()
    report = {"event": "done", "ok": False, "libtorrent": lt.__version__, "alerts": [], "peers": {}}

    stdin_closed = threading.Event()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            stdin_closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    with open(args.torrent, "rb") as f:
        meta = lt.bdecode(f.read())
    if meta is None:
        report["error"] = "cannot decode %s" % args.torrent
        emit(report)
        sys.exit(1)
    if args.no_webseed:
        meta.pop(b"url-list", None)
        meta.pop(b"httpseeds", None)
    ti = lt.torrent_info(meta)
    if args.no_webseed:
        ti.set_web_seeds([])
    ih = str(ti.info_hashes().v1)
    if ih != args.infohash.lower():
        report["error"] = "infohash %s, want %s" % (ih, args.infohash)
        emit(report)
        sys.exit(1)

    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        # Every peer of these tests is 127.0.0.1 on its own port.
        "allow_multiple_connections_per_ip": True,
        # Seed to anyone who asks, at once.
        "unchoke_slots_limit": -1,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification,
    })
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = args.save
    if args.no_webseed:
        atp.url_seeds = []
        atp.http_seeds = []
    h = ses.add_torrent(atp)

    def drain():
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                report["alerts"].append("%s: %s" % (type(a).__name__, a.message()))
            elif isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert)):
                report.setdefault("tracker", []).append(a.message())

    def note_peers():
        for p in h.get_peer_info():
            key = "%s:%d" % (p.ip[0], p.ip[1])
            e = report["peers"].setdefault(key, {"downloaded": 0, "uploaded": 0})
            e["downloaded"] = max(e["downloaded"], p.total_download)
            e["uploaded"] = max(e["uploaded"], p.total_upload)
            e["web_seed"] = p.connection_type != lt.peer_info.standard_bittorrent
            e["client"] = p.client.decode("utf-8", "replace") if isinstance(p.client, bytes) else p.client

    def offer_peers():
        for hp in args.peer:
            host, port = hp.rsplit(":", 1)
            h.connect_peer((host, int(port)))

    seeding = False
    last_offer = 0.0
    deadline = start + args.timeout
    while not stdin_closed.is_set() and time.monotonic() < deadline:
        drain()
        st = h.status()
        note_peers()
        if st.errc.value() != 0:
            report["error"] = "torrent error: %s" % st.errc.message()
            break
        if st.state not in CHECKING and args.peer and time.monotonic() - last_offer > 2:
            offer_peers()
            last_offer = time.monotonic()
        if not seeding and st.is_seeding and st.state not in CHECKING:
            seeding = True
            pieces = list(st.pieces)
            emit({
                "event": "seeding",
                "port": ses.listen_port(),
                "seconds": round(time.monotonic() - start, 3),
                "num_pieces": ti.num_pieces(),
                "pieces_have": sum(1 for p in pieces if p),
                "total_payload_download": st.total_payload_download,
            })
        time.sleep(0.05)

    drain()
    note_peers()
    st = h.status()
    report.update(
        ok=seeding and "error" not in report,
        seeding=seeding,
        progress=st.progress,
        state=str(st.state),
        total_payload_download=st.total_payload_download,
        total_payload_upload=st.total_payload_upload,
        seconds=round(time.monotonic() - start, 3),
    )
    if not seeding and "error" not in report:
        report["error"] = "not seeding (progress %.3f, state %s)" % (st.progress, st.state)
    ses.remove_torrent(h)
    emit(report)
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
