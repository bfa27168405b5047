#!/usr/bin/env python3
"""exchangelib client used by http.sh: Autodiscover, then a direct EWS call, against the test nginx.

The nginx stand-in answers with 401 (Basic) and then with XML that is not a valid Autodiscover/EWS
response, so both attempts end in an exception; what matters is that genuine exchangelib requests
(Autodiscover SOAP/POX, EWS SOAP with Basic auth) are on the wire. TLS is verified against the test
CA (REQUESTS_CA_BUNDLE is set by the caller).
"""
import sys

from exchangelib import DELEGATE, Account, Configuration, Credentials
from exchangelib.autodiscover import Autodiscovery  # noqa: F401  (import check)
from exchangelib.protocol import BaseProtocol, FailFast

password = sys.argv[1]
BaseProtocol.TIMEOUT = 5
creds = Credentials("alice@contoso.test", password)

try:
    Account("alice@contoso.test", credentials=creds, autodiscover=True, access_type=DELEGATE,
            config=None)
except Exception as e:  # expected: the stand-in server cannot answer Autodiscover properly
    print("autodiscover:", type(e).__name__, str(e)[:200])

try:
    cfg = Configuration(service_endpoint="https://mail.contoso.test/EWS/Exchange.asmx",
                        credentials=creds, auth_type="basic", version=None, retry_policy=FailFast())
    acc = Account("alice@contoso.test", config=cfg, autodiscover=False, access_type=DELEGATE)
    acc.root.refresh()
except Exception as e:  # expected
    print("ews:", type(e).__name__, str(e)[:200])
print("exchangelib client finished")
