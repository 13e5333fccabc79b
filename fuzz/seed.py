#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/TARGET/) from real data: ../shared/data's logs and bounce
texts, the shipped configuration and the bounce rules. Run from the repository root:
python3 fuzz/seed.py"""
import json, os, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
data = root.parent / "shared" / "data"
corpus = root / "fuzz" / "corpus"


def write(target, name, payload):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(payload)


# Log lines, behind the first of log_line's prefixes (choice byte 0: none).
n = 0
for f in sorted((data / "logs").rglob("*")):
    if not f.is_file() or f.suffix not in (".log", ".txt", ".jsonl"):
        continue
    for line in f.read_text(errors="replace").splitlines():
        if f.suffix == ".jsonl":
            try:
                line = json.loads(line)["data"]
            except (ValueError, KeyError):
                continue
        if line.strip() and not line.startswith("#"):
            write("log_line", f"l{n}", b"\x00" + line.encode())
            n += 1

# Reply texts with their DSN, as `mailtrail classify` reads them.
tsv = data / "bounces" / "sisimai_bounces.tsv"
for i, row in enumerate(tsv.read_text(errors="replace").splitlines()[1:]):
    cols = row.split("\t")
    if len(cols) >= 4:
        write("bounce_reply", f"b{i}", f"{cols[1]}\t{cols[3]}".encode())

# The shipped configuration, whole and one section at a time.
config = (root / "config" / "mailtrail.toml").read_text()
write("config_file", "shipped", config.encode())
for i, section in enumerate(config.split("\n[")):
    write("config_file", f"s{i}", ("[" + section if i else section).encode())

# The built-in bounce rules, whole and a few rules at a time.
rules = (root / "src" / "bounce" / "rules.toml").read_text()
write("rules_file", "builtin", rules.encode())
for i, chunk in enumerate(rules.split("\n[[")[1:40]):
    write("rules_file", f"r{i}", ("[[" + chunk).encode())

# Notices: sender, recipient, subject, reply, message-id, envelope id, kind (NUL-separated).
for i, fields in enumerate([
    ["alice@example.com", "bob@example.net", "hello", "451 4.7.1 Greylisted", "<m1@example.com>", "ENV1", "w"],
    ["alice@example.com\r\nBcc: x@evil", "bob@example.net", "hi\r\nX-Evil: 1", "550 5.1.1 no", "<m2@x>", "E", "xx"],
    ["\"a b\"@example.com", "=?utf-8?b?w6k=?=@example.net", "caf\u00e9 \u65e5\u672c", "250 ok", "", "", "yyy"],
]):
    write("notice", f"n{i}", "\0".join(fields).encode())
# Milter stages (first byte: 0 MAIL, 1 RCPT, 2 header, 3 body, 4 end-of-message, 5 abort),
# separated by 0xFF; headers from the sisimai messages' reply texts as subjects.
stages = [
    b"\x00<alice@example.com> SIZE=1000 BODY=8BITMIME",
    b"\x01<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net",
    b"\x01<carol@example.org>",
    b"\x02Subject: =?utf-8?q?caf=C3=A9?= hello",
    b"\x02Message-ID: <m1@example.com>",
    b"\x02X-Mailtrail-Notice: warning",
    b"\x03Hello\r\nbye\r\n",
    b"\x044XyZ12AbC",
]
write("milter_session", "m0", b"\xff".join(stages))
write("milter_session", "m1", b"\xff".join(stages[:3] + [b"\x05"] + stages))
for i, row in enumerate(tsv.read_text(errors="replace").splitlines()[1:200]):
    cols = row.split("\t")
    if len(cols) >= 4:
        write("milter_session", f"s{i}", b"\xff".join([stages[0], stages[1], b"\x02Subject: " + cols[3].encode(), stages[-1]]))
print(f"corpora in {corpus}")
