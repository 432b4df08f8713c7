"""Which of a browser's ICE candidates the server's peer is given: none it can never reach.

Browsers may hide their host addresses behind mDNS names (``<uuid>.local``): Firefox does by default (seen
with its camera on), Chromium and Safari when the page has no camera permission. Only a host on the browser's own
link can resolve such a name, which a server never is: aioice's multicast query goes unanswered (and, where the
server's network carries multicast, holds the offer up for its one-second timeout per name). The browser's
connectivity checks reach the server's own candidates anyway, and the server learns the browser's address from
them (a peer-reflexive candidate, RFC 8445 7.3.1.3), as every Chromium call with hidden addresses already does.

An offer that also says ``a=end-of-candidates`` (Firefox's does, as the page waits for gathering before it
offers) broke calls outright: with every candidate of a media section unresolvable, aioice 0.13 counts component
1 as having no remote candidates, drops it (``Connection._prune_components``) and then gathers no local
candidate at all. The answer carried none, the browser had nothing to check, and no media ever flowed. So the
mDNS candidates are left out, and a section left without a candidate of component 1 loses its
``a=end-of-candidates`` too: the browser's checks are still to come (tests/webrtc/test_remote_candidates.py,
tests/network/test_firefox.py).
"""

from __future__ import annotations

from aioice.mdns import is_mdns_hostname

CANDIDATE = "a=candidate:"
END_OF_CANDIDATES = "a=end-of-candidates"


def _mdns_candidate(line: str) -> bool:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
    fields = line[len(CANDIDATE) :].split()
    return len(fields) > 4 and is_mdns_hostname(fields[4])


def _component(line: str) -> str:
    fields = line[len(CANDIDATE) :].split()
    return fields[1] if len(fields) > 1 else ""


def _section(lines: list[str]) -> list[str]:
    kept = [line for line in lines if not (line.startswith(CANDIDATE) and _mdns_candidate(line))]
    if len(kept) == len(lines):
        return lines
    if not any(line.startswith(CANDIDATE) and _component(line) == "1" for line in kept):
        kept = [line for line in kept if line != END_OF_CANDIDATES]
    return kept


def reachable_offer(sdp: str) -> str:
    """``sdp`` (a browser's offer) without its mDNS host candidates, and without ``a=end-of-candidates`` in a
    media section they leave with no candidate for component 1 (RTP, the only one with rtcp-mux)."""
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.splitlines()
    out: list[str] = []
    section: list[str] = []
    for line in lines:
        if line.startswith("m="):
            out += _section(section)
            section = []
        section.append(line)
    out += _section(section)
    if out == lines:
        return sdp
    return newline.join(out) + (newline if sdp.endswith(("\n", "\r")) else "")
