#!/usr/bin/python3
"""Small libtorrent driver used by the interop tests and the benchmark.

Run with Debian's /usr/bin/python3 (the python3-libtorrent module belongs to it).

  lt_tool.py create SOURCE OUT PIECE_LENGTH TRACKERS_JSON
      Make a v1 torrent of SOURCE (a file or a folder) and print {"infoHash": "<40 hex>"}.
  lt_tool.py seed TORRENT DATA_DIR PORT RATE_LIMIT
      Check the data in DATA_DIR, seed it on 127.0.0.1:PORT (TCP only), announce, print
      "READY <port>" once the tracker answered, then seed until killed. RATE_LIMIT is bytes/s,
      0 for none.
  lt_tool.py download TORRENT OUT_DIR PORT TIMEOUT_S
      Download TORRENT into OUT_DIR (TCP only) and exit 0 once every piece is verified;
      prints "PROGRESS <verified bytes>" about every 100 ms.
  lt_tool.py download-magnet URI OUT_DIR PORT TIMEOUT_S
      Like download, from a magnet link (its tr= trackers and x.pe= peers): prints
      "METADATA <ms since start>" once the metadata arrived, then progress as download does.
  lt_tool.py leech TORRENT OUT_DIR PORT TIMEOUT_S OPTIONS_JSON
      Like download, with session settings from OPTIONS_JSON: "upload_rate_limit" (bytes/s,
      applied on loopback too through the peer-class filter), "unchoke_slots_limit", and
      "seed_s" (seconds to go on seeding once complete, 0 to leave at once).
  lt_tool.py peer TORRENT SAVE_DIR PORT OPTIONS_JSON
      A peer for the peer-exchange (PEX) tests (give it a torrent without trackers): connected
      only to the addresses in OPTIONS_JSON's "connect" (["127.0.0.1:PORT", ...]). Other options:
      "download_limit" (bytes/s for this torrent, 0: none), "disable_pex" (no ut_pex),
      "host" (the address it listens on instead of 127.0.0.1),
      "timeout_s" (exit 1 after this long). Prints "READY <port>" once its data is checked and
      every "connect" address has finished its handshake, "PEER <host:port> <sources>" for each
      peer seen (sources: pex, tracker, incoming, ... as libtorrent records them; the address
      of a peer it dialled is where that peer listens), "DONE" once it has every piece, and
      runs until killed.
  lt_tool.py hang COUNT
      Open COUNT listening TCP sockets on 127.0.0.1 whose connects hang: backlog 0, never
      accepted, their accept queues filled by a few connections of our own, so that further
      SYNs are dropped (not refused). Prints "PORTS p1,p2,..." and waits until killed.

Every wait is bounded; errors go to stderr with a non-zero exit code.

With LT_TOOL_ENCRYPTION=forced in the environment, every session requires encryption both ways
(in_enc_policy and out_enc_policy forced, RC4 only): plain handshakes are refused.
"""

import json
import os
import signal
import sys
import time

import libtorrent as lt

ALERT_WAIT_S = 0.1
# How long a seeder waits for its data check and first tracker answer.
SEED_READY_TIMEOUT_S = 120.0
# How long a client waits for the trackers to answer its event=stopped announce.
STOP_ANNOUNCE_TIMEOUT_S = 2.0
# A seeder that has not heard from its tracker this long after its check announces again.
REANNOUNCE_AFTER_S = 3.0
# How often the downloader prints its progress.
PROGRESS_EVERY_S = 0.1


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def session_settings(port):
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification,
    }
    if os.environ.get("LT_TOOL_ENCRYPTION") == "forced":
        settings["in_enc_policy"] = int(lt.enc_policy.forced)
        settings["out_enc_policy"] = int(lt.enc_policy.forced)
        settings["allowed_enc_level"] = int(lt.enc_level.rc4)
        settings["prefer_rc4"] = True
    return settings


def create(source, out, piece_length, trackers_json):
    trackers = json.loads(trackers_json)
    fs = lt.file_storage()
    lt.add_files(fs, source)
    if fs.num_files() == 0:
        raise SystemExit("no files under " + source)
    ct = lt.create_torrent(fs, int(piece_length), flags=lt.create_torrent.v1_only)
    for tier, urls in enumerate(trackers):
        for url in urls:
            ct.add_tracker(url, tier)
    ct.set_creator("tdl test harness")
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(source)))
    data = lt.bencode(ct.generate())
    with open(out, "wb") as f:
        f.write(data)
    info = lt.torrent_info(out)
    print(json.dumps({"infoHash": str(info.info_hashes().v1)}))


class Announces:
    """Counts announces in flight, so a client can leave only after the tracker heard it."""

    def __init__(self):
        self.in_flight = 0
        self.completed_sent = 0
        self.stopped_sent = 0

    def on_alert(self, a):
        if isinstance(a, lt.tracker_announce_alert):
            self.in_flight += 1
            if a.event == lt.event_t.stopped:
                self.stopped_sent += 1
            elif a.event == lt.event_t.completed:
                self.completed_sent += 1
        elif isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert)):
            self.in_flight = max(0, self.in_flight - 1)


def drain(ses, announces, on_alert=None):
    for a in ses.pop_alerts():
        if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert, lt.listen_failed_alert)):
            log("libtorrent: " + a.message())
        elif isinstance(a, lt.tracker_error_alert):
            log("libtorrent: " + a.message())
        elif os.environ.get("LT_TOOL_DEBUG"):
            log("libtorrent: %s %s" % (a.what(), a.message()))
        announces.on_alert(a)
        if on_alert is not None:
            on_alert(a)


def seed(torrent, data_dir, port, rate_limit):
    port = int(port)
    rate_limit = int(rate_limit)
    settings = session_settings(port)
    if rate_limit > 0:
        settings["upload_rate_limit"] = rate_limit
    ses = lt.session(settings)
    if rate_limit > 0:
        # Loopback peers fall in the "local" class that ignores rate limits: put every
        # address in the global class so upload_rate_limit applies on 127.0.0.1 too.
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = data_dir
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    announces = Announces()
    h = ses.add_torrent(params)

    deadline = time.monotonic() + SEED_READY_TIMEOUT_S
    state = {"checked": False, "announced": False}

    def on_alert(a):
        if isinstance(a, lt.torrent_checked_alert):
            state["checked"] = True
        elif isinstance(a, lt.tracker_reply_alert) and state["checked"]:
            # The first announce after the check says left=0: the tracker lists us as a seeder.
            state["announced"] = True

    next_reannounce = None
    while True:
        if time.monotonic() > deadline:
            raise SystemExit("seeder not ready after %ds: %s" % (SEED_READY_TIMEOUT_S, h.status().state))
        ses.wait_for_alert(int(ALERT_WAIT_S * 1000))
        drain(ses, announces, on_alert)
        st = h.status()
        if st.errc.value() != 0:
            raise SystemExit("seeder error: " + st.errc.message())
        if st.is_seeding and state["announced"]:
            break
        if state["checked"] and not st.is_seeding and not st.is_finished:
            raise SystemExit(
                "data in %s does not match the torrent (%.1f%% present)" % (data_dir, st.progress * 100)
            )
        if st.is_seeding and state["checked"]:
            now = time.monotonic()
            if next_reannounce is None:
                next_reannounce = now + REANNOUNCE_AFTER_S
            elif now > next_reannounce:
                h.force_reannounce(0, -1)
                next_reannounce = now + REANNOUNCE_AFTER_S
    print("READY %d" % ses.listen_port(), flush=True)

    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Also stop when the process that started us is gone.
    while not stop["now"]:
        ses.wait_for_alert(500)
        drain(ses, announces)
        if os.getppid() == 1:
            break
    leave(ses, h, announces, downloaded=False)


def download(torrent, out_dir, port, timeout_s):
    port = int(port)
    ses = lt.session(session_settings(port))
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = out_dir
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    announces = Announces()
    h = ses.add_torrent(params)
    deadline = time.monotonic() + float(timeout_s)
    next_report = 0.0
    while True:
        ses.wait_for_alert(50)
        drain(ses, announces)
        st = h.status()
        if st.errc.value() != 0:
            raise SystemExit("download error: " + st.errc.message())
        now = time.monotonic()
        if now >= next_report or st.is_seeding:
            # Verified bytes so far, for progress charts.
            print("PROGRESS %d" % st.total_wanted_done, flush=True)
            next_report = now + PROGRESS_EVERY_S
        if st.is_seeding or st.is_finished:
            break
        if time.monotonic() > deadline:
            raise SystemExit("download timed out at %.1f%%" % (st.progress * 100))
    leave(ses, h, announces, downloaded=True)


def download_magnet(uri, out_dir, port, timeout_s):
    start = time.monotonic()
    port = int(port)
    ses = lt.session(session_settings(port))
    params = lt.parse_magnet_uri(uri)
    params.save_path = out_dir
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    announces = Announces()
    h = ses.add_torrent(params)
    deadline = start + float(timeout_s)
    next_report = 0.0
    have_metadata = False
    while True:
        ses.wait_for_alert(50)
        drain(ses, announces)
        st = h.status()
        if st.errc.value() != 0:
            raise SystemExit("download error: " + st.errc.message())
        now = time.monotonic()
        if not have_metadata and st.has_metadata:
            have_metadata = True
            print("METADATA %d" % int((now - start) * 1000), flush=True)
        if have_metadata and (now >= next_report or st.is_seeding):
            print("PROGRESS %d" % st.total_wanted_done, flush=True)
            next_report = now + PROGRESS_EVERY_S
        if have_metadata and (st.is_seeding or st.is_finished):
            break
        if now > deadline:
            what = "%.1f%%" % (st.progress * 100) if have_metadata else "no metadata"
            raise SystemExit("download timed out (%s)" % what)
    leave(ses, h, announces, downloaded=True)


def leech(torrent, out_dir, port, timeout_s, options_json):
    opts = json.loads(options_json)
    port = int(port)
    settings = session_settings(port)
    rate = int(opts.get("upload_rate_limit", 0))
    if rate > 0:
        settings["upload_rate_limit"] = rate
    if "unchoke_slots_limit" in opts:
        settings["unchoke_slots_limit"] = int(opts["unchoke_slots_limit"])
    ses = lt.session(settings)
    if rate > 0:
        f = lt.ip_filter()
        f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
        ses.set_peer_class_filter(f)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = out_dir
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    announces = Announces()
    h = ses.add_torrent(params)
    deadline = time.monotonic() + float(timeout_s)
    next_report = 0.0
    while True:
        ses.wait_for_alert(50)
        drain(ses, announces)
        st = h.status()
        if st.errc.value() != 0:
            raise SystemExit("download error: " + st.errc.message())
        now = time.monotonic()
        if now >= next_report or st.is_seeding:
            print("PROGRESS %d" % st.total_wanted_done, flush=True)
            next_report = now + PROGRESS_EVERY_S
        if st.is_seeding or st.is_finished:
            break
        if time.monotonic() > deadline:
            raise SystemExit("download timed out at %.1f%%" % (st.progress * 100))
    print("DONE", flush=True)
    seed_until = time.monotonic() + float(opts.get("seed_s", 0))
    while time.monotonic() < seed_until and os.getppid() != 1:
        ses.wait_for_alert(200)
        drain(ses, announces)
    leave(ses, h, announces, downloaded=True)


PEER_SOURCES = [
    ("tracker", lt.peer_info.tracker),
    ("dht", lt.peer_info.dht),
    ("pex", lt.peer_info.pex),
    ("lsd", lt.peer_info.lsd),
    ("resume", lt.peer_info.resume_data),
]


def peer(torrent, save_dir, port, options_json):
    opts = json.loads(options_json)
    port = int(port)
    settings = session_settings(port)
    if opts.get("host"):
        settings["listen_interfaces"] = "%s:%d" % (opts["host"], port)
    ses = lt.session(settings)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_dir
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    if opts.get("disable_pex"):
        params.flags |= lt.torrent_flags.disable_pex
    announces = Announces()
    h = ses.add_torrent(params)
    limit = int(opts.get("download_limit", 0))
    if limit > 0:
        # A torrent's own limit applies to loopback peers too (unlike the session's).
        h.set_download_limit(limit)
    connect = []
    for a in opts.get("connect", []):
        host, p = a.rsplit(":", 1)
        connect.append((host, int(p)))
    deadline = time.monotonic() + float(opts.get("timeout_s", 300))
    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    checked = False
    dialled = False
    ready = False
    done = False
    seen = set()
    next_dial = 0.0
    while not stop["now"] and os.getppid() != 1:
        if time.monotonic() > deadline:
            raise SystemExit("peer: timed out (ready: %s, done: %s)" % (ready, done))
        ses.wait_for_alert(100)
        drain(ses, announces)
        st = h.status()
        if st.errc.value() != 0:
            raise SystemExit("peer error: " + st.errc.message())
        if not checked and st.state in (
            lt.torrent_status.downloading,
            lt.torrent_status.finished,
            lt.torrent_status.seeding,
        ):
            checked = True
        peers = h.get_peer_info()
        for pi in peers:
            if pi.flags & (lt.peer_info.connecting | lt.peer_info.handshake):
                continue
            ep = "%s:%d" % (pi.ip[0], pi.ip[1])
            if ep in seen:
                continue
            seen.add(ep)
            names = [n for n, bit in PEER_SOURCES if pi.source & bit]
            if not pi.flags & lt.peer_info.outgoing_connection:
                names.append("incoming")
            print("PEER %s %s" % (ep, ",".join(names) or "-"), flush=True)
        if checked and not ready:
            now = time.monotonic()
            if now >= next_dial:
                # Dialled again until connected: a refused or lost first attempt is not the end.
                for ep in connect:
                    h.connect_peer(ep)
                dialled = True
                next_dial = now + 2.0
            up = {(pi.ip[0], pi.ip[1]) for pi in peers
                  if not pi.flags & (lt.peer_info.connecting | lt.peer_info.handshake)}
            if dialled and all(ep in up for ep in connect):
                ready = True
                print("READY %d" % ses.listen_port(), flush=True)
        if not done and (st.is_seeding or st.is_finished):
            done = True
            print("DONE", flush=True)


def hang(count):
    import socket

    listeners = []
    fillers = []
    ports = []
    for _ in range(int(count)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        listeners.append(s)
        port = s.getsockname()[1]
        ports.append(port)
        # Fill the accept queue (backlog 0 holds one connection); later SYNs are dropped.
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except (BlockingIOError, InterruptedError):
                pass
            fillers.append(c)
    time.sleep(0.2)
    print("PORTS " + ",".join(str(p) for p in ports), flush=True)
    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop["now"] and os.getppid() != 1:
        time.sleep(0.5)


def leave(ses, h, announces, downloaded):
    """Pause the torrent so it sends event=stopped, and wait (bounded) until the trackers have
    answered every announce, that one included."""
    deadline = time.monotonic() + STOP_ANNOUNCE_TIMEOUT_S
    trackers = len(h.trackers())
    # libtorrent skips the stopped announce to a tracker while another announce to it is in
    # flight: after a download, let the event=completed one be sent and answered first.
    while time.monotonic() < deadline:
        if announces.in_flight == 0 and (not downloaded or announces.completed_sent >= trackers):
            break
        ses.wait_for_alert(20)
        drain(ses, announces)
    h.pause()
    while time.monotonic() < deadline:
        if announces.stopped_sent >= trackers and announces.in_flight == 0:
            break
        ses.wait_for_alert(20)
        drain(ses, announces)


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "create" and len(argv) == 6:
        create(*argv[2:])
    elif cmd == "seed" and len(argv) == 6:
        seed(*argv[2:])
    elif cmd == "download" and len(argv) == 6:
        download(*argv[2:])
    elif cmd == "download-magnet" and len(argv) == 6:
        download_magnet(*argv[2:])
    elif cmd == "leech" and len(argv) == 7:
        leech(*argv[2:])
    elif cmd == "peer" and len(argv) == 6:
        peer(*argv[2:])
    elif cmd == "hang" and len(argv) == 3:
        hang(argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
