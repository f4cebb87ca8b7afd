"""Which network addresses a tenant-configured destination may never reach (pure, no I/O).

Used twice: when a custom provider is saved (a literal address in its base URL is refused at
once) and by the upstream client on the address it actually connects to (so a host name cannot
resolve to one of these after the check).
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address

Address = IPv4Address | IPv6Address

# NAT64's well-known prefix: its low 32 bits are the IPv4 address the packet ends up at.
_NAT64 = IPv6Network("64:ff9b::/96")
# The numbers `inet_aton` (and so most resolvers) also take as an IPv4 address: `127.1`,
# `0x7f.0.0.1`, `2130706433`, `0177.0.0.1`.
_LOOSE_V4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


def is_refused_address(address: Address) -> bool:
    """True for loopback, private (RFC 1918, fc00::/7, …), link-local, unspecified, multicast,
    reserved and other non-global addresses. An IPv6 address standing for an IPv4 one
    (IPv4-mapped `::ffff:0:0/96`, NAT64, 6to4) is judged by the IPv4 address it reaches."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_refused_address(embedded)
        if address.is_site_local:
            return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or not address.is_global
    )


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(address.packed[12:])
    return address.sixtofour


def literal_address(host: str) -> Address | None:
    """The address a URL's host names literally (`10.0.0.1`, `::1` without brackets, and the
    loose IPv4 forms resolvers accept, e.g. `127.1`), or None when the host is a name."""
    host = host.removesuffix(".")
    try:
        return ip_address(host)
    except ValueError:
        pass
    if not _LOOSE_V4.match(host):
        return None
    return _loose_ipv4(host.split("."))


def _loose_ipv4(parts: list[str]) -> IPv4Address | None:
    """`inet_aton`'s reading: the last part fills every byte the earlier ones did not."""
    numbers: list[int] = []
    for part in parts:
        lowered = part.lower()
        if lowered.startswith("0x"):
            numbers.append(int(lowered[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *leading, last = numbers
    if any(n > 0xFF for n in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (8 * (3 - index))
    return IPv4Address(value)
