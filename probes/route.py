"""Which interface the kernel sends a packet through: one rtnetlink RTM_GETROUTE per question.

The same lookup as ``ip route get DST from SRC``: policy routing rules (``ip rule from SRC lookup T``)
apply, so the answer is the interface an echo bound to ``SRC`` really leaves through. Used to prove (or
not) that a backup link's echoes take the backup path, and to tell whether this host has an address.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import itertools
import os
import socket
import struct

NETLINK_ROUTE = 0
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
RTA_DST, RTA_SRC, RTA_OIF = 1, 2, 4
NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")  # len, type
_seq = itertools.count(1)


def _attr(kind: int, data: bytes) -> bytes:
    size = RTATTR.size + len(data)
    return RTATTR.pack(size, kind) + data + b"\0" * (-size % 4)


def output_interface(destination: str, source: str | None = None) -> str | None:
    """Return the interface the kernel would send to ``destination`` from ``source`` through.

    None when there is no route (or no such source on this host); OSError only when netlink itself fails.
    """
    dst = ipaddress.ip_address(destination.split("%")[0])
    family = socket.AF_INET if dst.version == 4 else socket.AF_INET6
    bits = 32 if dst.version == 4 else 128
    attrs = _attr(RTA_DST, dst.packed)
    src_len = 0
    if source is not None:
        src = ipaddress.ip_address(source)
        if src.version != dst.version:
            return None
        attrs += _attr(RTA_SRC, src.packed)
        src_len = bits
    seq = next(_seq)
    body = RTMSG.pack(family, bits, src_len, 0, 0, 0, 0, 0, 0) + attrs
    msg = NLMSGHDR.pack(NLMSGHDR.size + len(body), RTM_GETROUTE, NLM_F_REQUEST, seq, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as nl:
        nl.settimeout(2.0)
        nl.sendto(msg, (0, 0))
        while True:
            data = nl.recv(65536)
            at = 0
            while at + NLMSGHDR.size <= len(data):
                length, kind, _flags, got_seq, _pid = NLMSGHDR.unpack_from(data, at)
                if length < NLMSGHDR.size:
                    return None
                if got_seq == seq:
                    if kind == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, at + NLMSGHDR.size)[0]
                        if code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EINVAL, errno.EADDRNOTAVAIL,
                                    errno.ENETDOWN, errno.EACCES, errno.EPERM):
                            return None  # no route, a source we do not have, a prohibit/blackhole route
                        raise OSError(code, os.strerror(code))
                    if kind == RTM_NEWROUTE:
                        return _oif(data[at + NLMSGHDR.size + RTMSG.size: at + length])
                at += (length + 3) & ~3


def _oif(attrs: bytes) -> str | None:
    at = 0
    while at + RTATTR.size <= len(attrs):
        size, kind = RTATTR.unpack_from(attrs, at)
        if size < RTATTR.size:
            break
        if kind == RTA_OIF:
            index = struct.unpack_from("=I", attrs, at + RTATTR.size)[0]
            try:
                return socket.if_indextoname(index)
            except OSError:
                return str(index)
        at += (size + 3) & ~3
    return None


def has_address(address: str) -> bool:
    """Return whether this host has ``address`` (a socket can bind to it)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((str(ip), 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


def is_address(text: str | None) -> bool:
    """Return whether ``text`` is an IP address (else an interface name, or None)."""
    if not text:
        return False
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return True
    return False
