#!/usr/bin/env python3
"""Writes the seed corpora under seeds/<target>/ (run from anywhere; stdlib only).

Raw datagrams for dhcpv4_parse / dhcpv6_parse; TCP byte streams of framed RFC 8156
messages for failover6_parse; for failover_parse, the draft-12 messages ISC dhcpd 4.4 sent
and accepted (tests/data/failover_isc_messages.txt, one message per seed); for engine_v4 / engine_v6, sequences of
records [ctl u8][len u16 BE][datagram] as twinlease::engine::fuzz documents (ctl bits 0-2:
ingress, 3-5: clock advance index, 6: reclaim first); for config_parse, the examples and
the engine fixtures. Addresses in the engine sequences are those the fixtures allocate."""
import ipaddress, os, shutil, struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")

# ---------------------------------------------------------------- DHCPv4 (RFC 2131/2132)
def ip4(s): return ipaddress.IPv4Address(s).packed
def o4(code, val): return bytes([code, len(val)]) + val

def v4(mtype, mac, xid, ciaddr="0.0.0.0", giaddr="0.0.0.0", hops=0, flags=0, opts=b"",
       sname=b"", file=b""):
    hdr = struct.pack("!BBBBIHH", 1, 1, 6, hops, xid, 0, flags)
    hdr += ip4(ciaddr) + ip4("0.0.0.0") + ip4("0.0.0.0") + ip4(giaddr)
    hdr += mac.ljust(16, b"\0") + sname.ljust(64, b"\0") + file.ljust(128, b"\0")
    return hdr + b"\x63\x82\x53\x63" + o4(53, bytes([mtype])) + opts + b"\xff"

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")
MACR = bytes.fromhex("0200000000aa")  # reserved in the engine fixture
PRL = o4(55, bytes([1, 3, 6, 15, 28, 42, 51, 58, 59, 119]))
SID = o4(54, ip4("192.0.2.1"))
def cid(mac): return o4(61, b"\x01" + mac)
# RFC 3046 option 82: circuit-id, remote-id; RFC 3527 link selection (sub-option 5).
RAI = o4(82, o4(1, b"eth0/1/3:100") + o4(2, MAC2))
RAI_LS = o4(82, o4(1, b"ge-0/0/1.7") + o4(2, b"cpe-42") + o4(5, ip4("10.1.0.0")))
RELAY = "198.51.100.7"

v4_packets = {
    "discover": v4(DISCOVER, MAC1, 0x1001, opts=cid(MAC1) + PRL + o4(57, struct.pack("!H", 1500)) + o4(12, b"host-1")),
    "request_selecting": v4(REQUEST, MAC1, 0x1001, opts=cid(MAC1) + o4(50, ip4("10.0.0.100")) + SID + PRL),
    "request_renewing": v4(REQUEST, MAC1, 0x1002, ciaddr="10.0.0.100", opts=cid(MAC1) + PRL),
    "request_init_reboot": v4(REQUEST, MAC1, 0x1003, flags=0x8000, opts=cid(MAC1) + o4(50, ip4("10.0.0.100"))),
    "release": v4(RELEASE, MAC1, 0x1004, ciaddr="10.0.0.100", opts=cid(MAC1) + SID),
    "decline": v4(DECLINE, MAC1, 0x1005, opts=cid(MAC1) + o4(50, ip4("10.0.0.100")) + SID),
    "inform": v4(INFORM, MAC1, 0x1006, ciaddr="10.0.0.50", opts=PRL),
    "discover_reserved": v4(DISCOVER, MACR, 0x1007, opts=PRL),
    "relay_discover_82": v4(DISCOVER, MAC2, 0x2001, giaddr=RELAY, hops=1, opts=cid(MAC2) + PRL + RAI),
    "relay_request_82": v4(REQUEST, MAC2, 0x2001, giaddr=RELAY, hops=1, opts=cid(MAC2) + o4(50, ip4("10.1.0.100")) + SID + RAI),
    "relay_discover_rapid_ls": v4(DISCOVER, MAC2, 0x2002, giaddr="203.0.113.9", hops=2, opts=o4(80, b"") + PRL + RAI_LS),
    "relay_release_82": v4(RELEASE, MAC2, 0x2003, ciaddr="10.1.0.100", giaddr=RELAY, opts=cid(MAC2) + SID + RAI),
    # RFC 2132 §9.3 option overload: more options in sname and file.
    "overload": v4(DISCOVER, MAC1, 0x3001, opts=o4(52, b"\x03") + cid(MAC1),
                   sname=o4(12, b"in-sname") + b"\xff", file=PRL + b"\xff"),
}

# ---------------------------------------------------------------- DHCPv6 (RFC 8415)
def ip6(s): return ipaddress.IPv6Address(s).packed
def o6(code, val): return struct.pack("!HH", code, len(val)) + val
SOLICIT, ADVERTISE, REQUEST6, CONFIRM, RENEW, REBIND, REPLY, RELEASE6, DECLINE6 = 1, 2, 3, 4, 5, 6, 7, 8, 9
INFOREQ = 11
def duid_ll(mac): return b"\x00\x03\x00\x01" + mac
SERVER_DUID = bytes([0, 4] + list(range(1, 17)))  # engine fixture's DUID-UUID
def client(mac): return o6(1, duid_ll(mac))
SERVER = o6(2, SERVER_DUID)
ORO = o6(6, struct.pack("!HHH", 23, 24, 82))
ELAPSED = o6(8, b"\0\0")
def ia_na(iaid, *addrs, t1=0, t2=0):
    return o6(3, struct.pack("!III", iaid, t1, t2) + b"".join(
        o6(5, ip6(a) + struct.pack("!II", 3600, 7200)) for a in addrs))
def ia_pd(iaid, *prefixes, t1=0, t2=0):
    body = b""
    for p in prefixes:
        n = ipaddress.IPv6Network(p)
        body += o6(26, struct.pack("!IIB", 3600, 7200, n.prefixlen) + n.network_address.packed)
    return o6(25, struct.pack("!III", iaid, t1, t2) + body)
def v6(mtype, xid, *opts): return bytes([mtype]) + xid.to_bytes(3, "big") + b"".join(opts)
def relay(inner, hops, link, peer, *opts):
    return bytes([12, hops]) + ip6(link) + ip6(peer) + b"".join(opts) + o6(9, inner)

MAC6 = bytes.fromhex("020000000061")
MAC6R = bytes.fromhex("0200000000aa")  # reserved DUID in the engine fixture
NA1, PD1 = "2001:db8:1::107", "2001:db8:8000:700::/56"
v6_packets = {
    "solicit": v6(SOLICIT, 0x10, client(MAC6), ELAPSED, ORO, ia_na(1), ia_pd(2)),
    "solicit_rapid": v6(SOLICIT, 0x11, client(MAC6), ELAPSED, o6(14, b""), ia_na(1), ia_pd(2)),
    "request": v6(REQUEST6, 0x12, client(MAC6), SERVER, ELAPSED, ORO, ia_na(1, NA1), ia_pd(2, PD1)),
    "renew": v6(RENEW, 0x13, client(MAC6), SERVER, ELAPSED, ia_na(1, NA1, t1=1800, t2=2880), ia_pd(2, PD1)),
    "rebind": v6(REBIND, 0x14, client(MAC6), ELAPSED, ia_na(1, NA1), ia_pd(2, PD1)),
    "release": v6(RELEASE6, 0x15, client(MAC6), SERVER, ia_na(1, NA1), ia_pd(2, PD1)),
    "decline": v6(DECLINE6, 0x16, client(MAC6), SERVER, ia_na(1, NA1)),
    "confirm": v6(CONFIRM, 0x17, client(MAC6), ia_na(1, NA1)),
    "information_request": v6(INFOREQ, 0x18, client(MAC6), ORO),
    "solicit_reserved": v6(SOLICIT, 0x19, client(MAC6R), o6(14, b""), ia_na(7), ia_pd(8)),
}
LINK3, PEER = "2001:db8:3::1", "fe80::61"
def two_levels(inner, iface=b"port-7", link_inner="::", link_outer="2001:db8:ffff::1"):
    r1 = relay(inner, 0, link_inner, PEER, o6(18, iface))
    return relay(r1, 1, link_outer, "2001:db8:ffff::2", o6(18, b"agg-1"))
v6_packets["relay2_solicit"] = two_levels(v6(SOLICIT, 0x20, client(MAC6), ia_na(1), ia_pd(2)))
v6_packets["relay2_solicit_rapid"] = two_levels(v6(SOLICIT, 0x21, client(MAC6), o6(14, b""), ia_na(1), ia_pd(2)))
v6_packets["relay2_request"] = two_levels(v6(REQUEST6, 0x22, client(MAC6), SERVER, ia_na(1, "2001:db8:2::101"), ia_pd(2, "2001:db8:9000:1::/64")))
v6_packets["relay1_solicit_link"] = relay(v6(SOLICIT, 0x23, client(MAC6), o6(14, b""), ia_na(1)), 0, LINK3, PEER)

# ---------------------------------------------------------------- DHCPv6 failover (RFC 8156)
# A frame is msg-size (RFC 5460 5.1) then msg-type, 3-byte xid, 4-byte sent-time (8156 5.2).
def fo6(mtype, xid, sent, *opts):
    m = bytes([mtype]) + xid.to_bytes(3, "big") + struct.pack("!I", sent) + b"".join(opts)
    return struct.pack("!H", len(m)) + m
BNDUPD, BNDREPLY, CONNECT6, CONNECTREPLY6, STATE6, CONTACT6, UPDREQALL6, UPDDONE6 = 24, 25, 31, 32, 34, 35, 29, 30
SENT = 0x2f000000
def u32(code, v): return o6(code, struct.pack("!I", v))
CONNECT_OPTS = (o6(130, b"edge-a"), o6(127, struct.pack("!HH", 1, 0)), u32(122, 3600),
                u32(128, 60), u32(121, 10), o6(115, struct.pack("!H", 1)))
def fo_binding(status=1, start=SENT - 100, extra=b""):
    return (o6(114, bytes([status])) + u32(133, start) + u32(134, SENT + 7200) + u32(46, 5)
            + u32(123, SENT + 10800) + u32(126, SENT - 5) + u32(120, SENT + 7200) + extra)
def fo_iaaddr(a, extra=b""):
    return o6(5, ip6(a) + struct.pack("!II", 3600, 7200) + fo_binding(extra=extra))
def fo_iaprefix(p, status=1, extra=b""):
    n = ipaddress.IPv6Network(p)
    return o6(26, struct.pack("!IIB", 3600, 7200, n.prefixlen) + n.network_address.packed
              + fo_binding(status=status, extra=extra))
FO_CLIENT = o6(45, client(MAC6) + u32(100, SENT)
               + o6(3, struct.pack("!III", 1, 1800, 2880) + fo_iaaddr(NA1))
               + o6(25, struct.pack("!III", 2, 0, 0) + fo_iaprefix(PD1)))
FO_REPLY = o6(45, client(MAC6)
              + o6(3, struct.pack("!III", 1, 0, 0)
                   + o6(5, ip6(NA1) + struct.pack("!II", 0, 0) + o6(13, b"\x00\x10in use")
                        + o6(114, b"\x01") + u32(124, SENT + 10800))))
failover6_streams = {
    "connect_reply_state": fo6(CONNECT6, 1, SENT, *CONNECT_OPTS)
        + fo6(CONNECTREPLY6, 1, SENT, *CONNECT_OPTS[1:])
        + fo6(STATE6, 2, SENT, o6(132, b"\x02"), o6(131, b"\x01"), u32(133, SENT - 60))
        + fo6(CONTACT6, 3, SENT),
    "bndupd_client": fo6(BNDUPD, 0x10, SENT, FO_CLIENT) + fo6(BNDREPLY, 0x10, SENT, FO_REPLY),
    "bndupd_prefix": fo6(UPDREQALL6, 0x20, SENT)
        + fo6(BNDUPD, 0x21, SENT, fo_iaprefix("2001:db8:8000:800::/56", status=6, extra=u32(100, SENT)))
        + fo6(UPDDONE6, 0x20, SENT),
    "disconnect": fo6(33, 0x30, SENT, o6(13, b"\x00\x14shutting down")),
}

def rec(ctl, d): return bytes([ctl]) + struct.pack("!H", len(d)) + d

def failover_isc_messages():
    """`name hex` lines of the dhcpd capture file (comments start with #)."""
    path = os.path.join(HERE, "..", "tests", "data", "failover_isc_messages.txt")
    out = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            name, hexa = line.split()
            out["isc_" + name] = bytes.fromhex(hexa)
    return out

def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    for n, p in v4_packets.items(): write("dhcpv4_parse", n, p)
    for n, p in v6_packets.items(): write("dhcpv6_parse", n, p)
    for n, p in failover6_streams.items(): write("failover6_parse", n, p)
    for n, p in failover_isc_messages().items(): write("failover_parse", n, p)
    P4, P6 = v4_packets, v6_packets
    # engine_v4: ctl 0 = on eth1, 2 = broadcast, 1 = unknown interface (relayed), 8.. advance.
    e4 = {
        "dora": [(2, P4["discover"]), (2, P4["request_selecting"])],
        "dora_renew_release": [(2, P4["discover"]), (2, P4["request_selecting"]),
                               (0x20, P4["request_renewing"]), (0, P4["release"])],
        "dora_decline_probation": [(2, P4["discover"]), (2, P4["request_selecting"]),
                                   (2, P4["decline"]), (0x68, P4["discover"])],
        "offer_expires": [(2, P4["discover"]), (0x50, P4["request_selecting"])],
        "init_reboot_inform": [(2, P4["request_init_reboot"]), (0, P4["inform"])],
        "reserved": [(2, P4["discover_reserved"])],
        "relay_82": [(1, P4["relay_discover_82"]), (1, P4["relay_request_82"]),
                     (1, P4["relay_release_82"])],
        "relay_rapid_ls": [(1, P4["relay_discover_rapid_ls"])],
        "overload": [(2, P4["overload"])],
    }
    for n, recs in e4.items(): write("engine_v4", n, b"".join(rec(c, d) for c, d in recs))
    # engine_v6: ctl 0 = direct multicast on eth1, 1 = from a relay agent, 2 = unicast.
    e6 = {
        "solicit_request": [(0, P6["solicit"]), (0, P6["request"])],
        "rapid_renew_rebind_release": [(0, P6["solicit_rapid"]), (0x10, P6["renew"]),
                                       (0x18, P6["rebind"]), (0, P6["release"])],
        "rapid_decline": [(0, P6["solicit_rapid"]), (0, P6["decline"]), (0x68, P6["solicit_rapid"])],
        "confirm_inforeq": [(0, P6["confirm"]), (0, P6["information_request"])],
        "unicast_request": [(2, P6["request"])],
        "reserved": [(0, P6["solicit_reserved"])],
        "relay2": [(1, P6["relay2_solicit"]), (1, P6["relay2_request"])],
        "relay2_rapid": [(1, P6["relay2_solicit_rapid"]), (1, P6["relay1_solicit_link"])],
    }
    for n, recs in e6.items(): write("engine_v6", n, b"".join(rec(c, d) for c, d in recs))
    # config_parse: the examples and the engine fixtures.
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    ex = os.path.join(root, "examples")
    for f in sorted(os.listdir(ex)):
        if f.endswith(".toml"):
            write("config_parse", f, open(os.path.join(ex, f), "rb").read())
    fx = open(os.path.join(root, "dhcp-userspace", "src", "engine", "fuzz.rs")).read()
    for name in ("CONFIG_V4", "CONFIG_V6"):
        body = fx.split("pub const %s: &str = r#\"" % name)[1].split('"#;')[0]
        write("config_parse", "engine_fixture_%s.toml" % name[-2:].lower(), body.encode())

if __name__ == "__main__":
    main()
