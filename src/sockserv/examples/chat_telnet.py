"""Telnet commands in a client's byte stream (RFC 854), removed before anything else.

A student who joins with `telnet` sends more than text.  Telnet commands start with the byte
IAC (0xFF): IAC WILL/WONT/DO/DONT OPTION negotiate an option, IAC SB ... IAC SE carries a
subnegotiation, IAC IP is what Ctrl-C sends (followed by IAC DO TIMING-MARK, after which
telnet waits for an answer), IAC IAC stands for one data byte 0xFF, and the other two-byte
commands (NOP, DM, BRK, AO, AYT, EC, EL, GA) have no option byte.  Passed on as text they reach
every other student's screen, and the unanswered negotiation freezes the sender's telnet.

`TelnetFilter` is a byte-at-a-time state machine (a command may be split across two reads,
so the state survives between feed() calls).  feed(data) returns a `Filtered`:

- data:        the client's own bytes, commands removed, IAC IAC turned into one 0xFF;
- replies:     what to send back: every offer is refused, IAC DO X with IAC WONT X and
               IAC WILL X with IAC DONT X, so no client waits for an answer.  WONT and DONT
               are not answered: an option is always off here, and RFC 854 says a request
               for the state one is already in is not acknowledged (this also rules out
               negotiation loops);
- interrupted: True once IAC IP has been seen; data then holds only what came before it
               and the filter ignores everything after (the connection is to end).

No sockets, no threads: it can serve any server implementation.
"""

from typing import NamedTuple

__all__ = ["IAC", "DONT", "DO", "WONT", "WILL", "SB", "SE", "IP", "TIMING_MARK",
           "Filtered", "TelnetFilter"]

IAC, DONT, DO, WONT, WILL, SB = 255, 254, 253, 252, 251, 250
IP, SE = 244, 240
TIMING_MARK = 6

_ANSWER = {DO: WONT, WILL: DONT}    # the refusal for each offer; WONT/DONT get none

# States of the machine.
_DATA, _COMMAND, _OPTION, _SUB, _SUB_IAC, _DONE = range(6)


class Filtered(NamedTuple):
    """The result of TelnetFilter.feed(): data bytes, reply bytes, interrupted flag."""

    data: bytes
    replies: bytes
    interrupted: bool


class TelnetFilter:
    """Removes telnet commands from a byte stream, answering offers; see the module docstring."""

    def __init__(self):
        self._state = _DATA
        self._verb = None       # WILL/WONT/DO/DONT while its option byte is awaited

    @property
    def interrupted(self):
        """True once IAC IP has been seen."""
        return self._state == _DONE

    def feed(self, data):
        """Filter the next bytes of the stream; return a Filtered."""
        if self._state == _DATA and IAC not in data:
            return Filtered(bytes(data), b"", False)   # the usual case, without a loop
        out = bytearray()
        replies = bytearray()
        for byte in data:
            state = self._state
            if state == _DATA:
                if byte == IAC:
                    self._state = _COMMAND
                else:
                    out.append(byte)
            elif state == _COMMAND:
                if byte == IAC:                         # IAC IAC: one data byte 0xFF
                    out.append(IAC)
                    self._state = _DATA
                elif byte in (WILL, WONT, DO, DONT):
                    self._verb = byte
                    self._state = _OPTION
                elif byte == SB:
                    self._state = _SUB
                elif byte == IP:
                    self._state = _DONE
                    break
                else:                                   # NOP, DM, AYT, GA, a stray SE, ...
                    self._state = _DATA
            elif state == _OPTION:
                if self._verb in _ANSWER:
                    replies += bytes((IAC, _ANSWER[self._verb], byte))
                self._verb = None
                self._state = _DATA
            elif state == _SUB:
                if byte == IAC:
                    self._state = _SUB_IAC
            elif state == _SUB_IAC:
                # IAC SE ends the subnegotiation; IAC IAC is a 0xFF inside it (dropped too).
                self._state = _DATA if byte == SE else _SUB
            else:                                       # _DONE: the client is leaving
                break
        return Filtered(bytes(out), bytes(replies), self._state == _DONE)
