#!/usr/bin/python3
"""Download one .torrent with libtorrent, alone on loopback, and report.

Run with /usr/bin/python3 (Debian's python3-libtorrent). Used by the interop
tests: the session has DHT, LSD, UPnP and NAT-PMP off and listens on
127.0.0.1 only, so bytes come from the torrent's web seed (BEP 19 url-list),
from its tracker, or from the peers given with --peer, and nowhere else.

The torrent must download completely and the client must reach the seeding
state within --timeout seconds. Then every piece is checked again from disk
(force_recheck) and all of them must pass. A JSON report goes to stdout in
every case; the exit status is 0 only on success.
"""

import argparse
import json
import sys
import time

import libtorrent as lt


STATES = lt.torrent_status.states
CHECKING = (STATES.checking_files, STATES.checking_resume_data, STATES.queued_for_checking)


def fail(report, msg):
    report["ok"] = False
    report["error"] = msg
    print(json.dumps(report))
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--infohash", required=True, help="expected v1 infohash, hex")
    ap.add_argument("--save", required=True, help="save_path")
    ap.add_argument("--peer", action="append", default=[], help="host:port to connect to")
    ap.add_argument("--no-webseed", action="store_true", help="drop the url-list")
    ap.add_argument("--no-tracker", action="store_true", help="drop announce and announce-list")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--utp", action="store_true", help="dial peers over uTP only (BEP 29): outgoing TCP off")
    args = ap.parse_args()

    report = {"ok": False, "libtorrent": lt.__version__, "alerts": [], "peers": {}}
    start = time.monotonic()

    with open(args.torrent, "rb") as f:
        meta = lt.bdecode(f.read())
    if meta is None:
        fail(report, "cannot decode %s" % args.torrent)
    ul = meta.get(b"url-list", [])
    report["url_list_in_file"] = [u.decode() for u in (ul if isinstance(ul, list) else [ul])]
    # Stripping outer keys leaves the info dictionary, and so the infohash,
    # as it was.
    if args.no_webseed:
        meta.pop(b"url-list", None)
        meta.pop(b"httpseeds", None)
    if args.no_tracker:
        meta.pop(b"announce", None)
        meta.pop(b"announce-list", None)
    ti = lt.torrent_info(meta)
    if args.no_webseed:
        ti.set_web_seeds([])

    ih = str(ti.info_hashes().v1)
    report.update(
        infohash=ih,
        name=ti.name(),
        num_pieces=ti.num_pieces(),
        piece_length=ti.piece_length(),
        total_size=ti.total_size(),
        files=[
            {"path": ti.files().file_path(i), "size": ti.files().file_size(i)}
            for i in range(ti.num_files())
        ],
        web_seeds=[w["url"] for w in ti.web_seeds()],
        trackers=[t.url for t in ti.trackers()],
    )
    if ih != args.infohash.lower():
        fail(report, "infohash %s, want %s" % (ih, args.infohash))

    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": args.utp,
        "enable_outgoing_utp": args.utp,
        "enable_outgoing_tcp": not args.utp,
        # Every peer of these tests is 127.0.0.1 on its own port.
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification,
    })

    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = args.save
    if args.no_webseed:
        atp.url_seeds = []
        atp.http_seeds = []
    if args.no_tracker:
        atp.trackers = []
    h = ses.add_torrent(atp)
    report["handle_url_seeds"] = sorted(h.url_seeds())
    if args.no_webseed and report["handle_url_seeds"]:
        fail(report, "web seeds left after removing them: %s" % report["handle_url_seeds"])

    def drain():
        out = []
        for a in ses.pop_alerts():
            out.append(a)
            if a.category() & lt.alert.category_t.error_notification:
                report["alerts"].append("%s: %s" % (type(a).__name__, a.message()))
        return out

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

    peers_added = False
    last_offer = 0.0
    deadline = start + args.timeout
    while True:
        drain()
        st = h.status()
        if not peers_added and st.state not in CHECKING:
            offer_peers()
            peers_added = True
            last_offer = time.monotonic()
        note_peers()
        if st.is_seeding and peers_added:
            break
        if st.errc.value() != 0:
            fail(report, "torrent error: %s" % st.errc.message())
        if time.monotonic() > deadline:
            report["progress"] = st.progress
            report["state"] = str(st.state)
            fail(report, "not seeding after %.0f s (progress %.3f)" % (args.timeout, st.progress))
        # Peers given by hand are gone once a connection drops; offer them
        # again every two seconds while downloading.
        if peers_added and time.monotonic() - last_offer > 2:
            offer_peers()
            last_offer = time.monotonic()
        time.sleep(0.05)
    report["download_seconds"] = round(time.monotonic() - start, 3)
    st = h.status()
    report["total_payload_download"] = st.total_payload_download
    report["total_download"] = st.total_download

    # Check every piece again from disk, as a separate pass.
    drain()
    h.force_recheck()
    checked = False
    while True:
        for a in drain():
            if isinstance(a, lt.torrent_checked_alert):
                checked = True
        st = h.status()
        if checked and st.state not in CHECKING:
            break
        if time.monotonic() > deadline + 10:
            fail(report, "recheck did not finish")
        time.sleep(0.05)
    st = h.status()
    pieces = list(st.pieces)
    report["recheck_pieces_have"] = sum(1 for p in pieces if p)
    report["recheck_num_pieces"] = st.num_pieces
    report["recheck_state"] = str(st.state)
    if len(pieces) != ti.num_pieces() or not all(pieces) or st.num_pieces != ti.num_pieces():
        fail(report, "after recheck %d of %d pieces verified" % (report["recheck_pieces_have"], ti.num_pieces()))
    if not st.is_seeding:
        fail(report, "not seeding after recheck (state %s)" % st.state)

    # Let go of the files before the caller reads them.
    ses.remove_torrent(h)
    t_end = time.monotonic() + 5
    while time.monotonic() < t_end:
        if any(isinstance(a, lt.torrent_removed_alert) for a in drain()):
            break
        time.sleep(0.02)
    del ses

    report["ok"] = True
    report["seconds"] = round(time.monotonic() - start, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
