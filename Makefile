# exwatch: the README's two commands are `make demo` and `make test`.
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO ?= pcaps/demo-exchange-day.pcap
BIN := target/release/exwatch

.PHONY: install deps deps-live build bench-live demo test lint bench bench-throughput bench-decrypt bench-flood fuzz fuzz-long golden check-signatures record

# libpcap is the one system library exwatch links; install it when pkg-config cannot find it.
deps:
	@if ! (command -v pkg-config >/dev/null && pkg-config --exists libpcap); then \
		echo "libpcap not found: installing libpcap-dev and pkg-config with apt-get"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends libpcap-dev pkg-config; \
	fi

# The peers of tests/live.rs and the browser of tests/report.rs (as root; elsewhere those
# tests skip and say why).
LIVE_TOOLS := ip:iproute2 tcpdump:tcpdump tcpreplay:tcpreplay nginx:nginx-light curl:curl sipp:sip-tester ethtool:ethtool clickhouse-server:clickhouse-server chromium:chromium zstd:zstd tshark:tshark
deps-live:
	@if [ "$$(id -u)" = 0 ]; then \
		missing=""; \
		for t in $(LIVE_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
		if [ -n "$$missing" ]; then \
			echo "live capture tests: installing$$missing with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		fi; \
	fi

build: deps
	$(CARGO) build --release

# Binary, manual page and completions under $(DESTDIR)$(PREFIX); the systemd unit and the
# logrotate file under $(DESTDIR)/etc (the unit runs $(PREFIX)/bin/exwatch: keep the default
# PREFIX or edit its ExecStart).
PREFIX ?= /usr/local
install: build
	install -D -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/exwatch
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) man > $(DESTDIR)$(PREFIX)/share/man/man1/exwatch.1
	$(BIN) completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/exwatch
	$(BIN) completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_exwatch
	$(BIN) completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/exwatch.fish
	install -D -m 644 contrib/exwatch.service $(DESTDIR)/etc/systemd/system/exwatch.service
	install -D -m 644 contrib/exwatch.logrotate $(DESTDIR)/etc/logrotate.d/exwatch

demo: build
	$(BIN) audit --policy examples/policy.toml --json demo-records.ndjson $(DEMO)
	@echo
	@echo "records written to demo-records.ndjson ($$(wc -l < demo-records.ndjson) flows), judged by examples/policy.toml"

test: deps deps-live check-signatures
	$(CARGO) test --profile ci --all-targets

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

check-signatures:
	python3 signatures/check.py ../shared/exchange-ports.md

# Regenerate tests/golden/ after a deliberate change in classification (see tests/golden/README.md).
golden: build
	EXWATCH_BLESS=1 $(CARGO) test --release --test golden

bench: deps
	$(CARGO) bench --bench pipeline

bench-throughput: build
	python3 benches/throughput.py

# Cost of --tls-keylog: many decrypted TLS 1.2/1.3 flows, with and without the key log.
bench-decrypt: build
	python3 benches/decrypt.py

# Peak RSS under a 2 M-flow SYN flood (1 us apart), with and without --max-flows 100000.
bench-flood: build
	python3 benches/flood.py

# Highest tcpreplay rate onto a veth with no drop of any kind, exwatch live beside tcpdump (root).
bench-live: build deps-live
	bash benches/live.sh

fuzz:
	@echo "see fuzz/README.md: cargo +nightly fuzz run <target>"

# Every fuzz target seeded from the captures, each until 10 M inputs or 30 minutes
# (FUZZ_RUNS, FUZZ_SECS, TARGETS to change); prints the table fuzz/README.md keeps.
FUZZ_RUNS ?= 10000000
FUZZ_SECS ?= 1800
fuzz-long:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	fuzz/run-all.sh --long $(FUZZ_RUNS) $(FUZZ_SECS)

# Re-record pcaps/ from real peers (root, Debian 12; see pcaps/README.md). Then `make golden`.
record:
	$(SUDO) bash pcaps/record/all.sh
