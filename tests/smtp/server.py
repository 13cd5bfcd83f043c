#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd). Every accepted message is written to
--dir as one .eml file, with the envelope in X-Test-Envelope-* headers on top.

Recipients whose local part starts with "reject" are refused for good (550), those
starting with "tempfail" for now (451). --rcpt-delay slows every RCPT command down, so a
test can stop the sender in the middle of a batch; a recipient whose local part starts
with "stall" holds its first RCPT for 3 s more, so a test knows where the sender waits. Prints "listening <port>" once ready.
"""
import argparse
import asyncio
import itertools
import os
import signal
import time

from aiosmtpd.controller import Controller


class Mailbox:
    def __init__(self, directory, rcpt_delay):
        self.directory = directory
        self.rcpt_delay = rcpt_delay
        self.counter = itertools.count()
        self.stalled = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local.startswith("reject"):
            return "550 5.1.1 Mailbox unavailable"
        if local.startswith("tempfail"):
            return "451 4.3.0 Try again later"
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        if local.startswith("stall") and address not in self.stalled:
            self.stalled.add(address)
            await asyncio.sleep(3)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{next(self.counter)}.eml"
        head = (
            f"X-Test-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Test-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        tmp = os.path.join(self.directory, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(head + envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--rcpt-delay", type=float, default=0.0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    controller = Controller(
        Mailbox(args.dir, args.rcpt_delay), hostname="127.0.0.1", port=args.port
    )
    controller.start()
    print(f"listening {args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
