#!/usr/bin/env python3
"""Exchange-flavoured SMTP server for the exwatch capture corpus (used by smtp.sh).

Built on aiosmtpd. It greets like an Exchange 2016 receive connector
("220 mail.contoso.test Microsoft ESMTP MAIL Service ready at <date>") and its EHLO reply
advertises the Exchange extensions (X-ANONYMOUSTLS, X-EXPS GSSAPI NTLM, XEXCH50, XRDST, ...).
STARTTLS is real (aiosmtpd + ssl); AUTH LOGIN and PLAIN are real (aiosmtpd's own
implementation), AUTH NTLM is only advertised. Mail is accepted and discarded.

usage: exchange_smtpd.py --listen 192.0.2.10 --port 25 --port 587 --port 2525 \
           --cert server.crt --key server.key --user alice --password PW
"""
import argparse
import asyncio
import datetime
import email.utils
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOSTNAME = "mail.contoso.test"


class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        peer = session.peer[0] if session.peer else "0.0.0.0"
        tls = session.ssl is not None
        lines = [f"{HOSTNAME} Hello [{peer}]", "SIZE 37748736", "PIPELINING", "DSN",
                 "ENHANCEDSTATUSCODES"]
        if not tls:
            lines += ["STARTTLS", "X-ANONYMOUSTLS"]
        lines += ["AUTH NTLM LOGIN", "X-EXPS GSSAPI NTLM", "8BITMIME", "BINARYMIME",
                  "CHUNKING", "XEXCH50", "XRDST", "XSHADOWREQUEST"]
        return [f"250-{l}" for l in lines[:-1]] + [f"250 {lines[-1]}"]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 2.6.0 <exwatch-test@mail.contoso.test> [InternalId=1] Queued mail for delivery"

    async def handle_QUIT(self, server, session, envelope):
        return "221 2.0.0 Service closing transmission channel"


class Auth:
    def __init__(self, user, password):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == self.user and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--port", type=int, action="append", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", default="alice")
    ap.add_argument("--password", required=True)
    a = ap.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    handler, auth = Handler(), Auth(a.user, a.password)

    def factory():
        ident = "Microsoft ESMTP MAIL Service ready at " + email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc))
        return SMTP(handler, hostname=HOSTNAME, ident=ident, tls_context=ctx,
                            require_starttls=False, authenticator=auth, auth_require_tls=False,
                            auth_exclude_mechanism=["PLAIN"])

    async def run():
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(factory, a.listen, p) for p in a.port]
        print("listening", a.port, flush=True)
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(run())


if __name__ == "__main__":
    main()
