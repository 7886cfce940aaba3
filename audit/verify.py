#!/usr/bin/env python3
"""An independent verifier of warden audit logs, exports and proofs
(format 2, audit/FORMAT.md), in the Python standard library plus the
`openssl` command for ECDSA signatures.  It shares no code with warden.

    verify.py log DIR [--pubkey PEM | --pin SHA256] [--witness FILE]
                      [--tpm-counter N]
    verify.py export FILE [--pubkey PEM | --pin SHA256]
    verify.py proof FILE [--pubkey PEM | --pin SHA256]

--pin: the SHA-256 (hex) of the trusted key's DER SubjectPublicKeyInfo
(`openssl pkey -pubin -outform DER | sha256sum`); a key the file names is
used only if it has that fingerprint.  --witness: the checkpoint lines a
witness kept; each must be signed by the trusted key, stand in the log at
its seq byte for byte, and have the root of the log's tree of its size.
--tpm-counter: the value of the TPM counter the log's `start` record
names (`tpm2_nvread`); the last checkpoint must carry it, or one more (a
stop between a checkpoint and its bump).  Behind it is a rollback.

Exit status: 0 verified with the given key, 1 invalid, 2 unreadable,
3 consistent but not authenticated (no key, or records no signed tree
head covers).
"""
import base64, csv, glob, hashlib, io, json, os, subprocess, sys, tempfile, time
from datetime import datetime, timezone

ZEROS = "0" * 64


class Invalid(Exception):
    pass


def sha(b):
    return hashlib.sha256(b).digest()


def leaf_hash(c):
    return sha(b"\x00" + c)


def node_hash(l, r):
    return sha(b"\x01" + l + r)


def mth(leaves):
    """RFC 9162 2.1.1, by its definition."""
    n = len(leaves)
    if n == 0:
        return sha(b"")
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


class Tree:
    """Leaves appended one by one from a known prefix (its compact range,
    largest subtree first); root(n) for any size seen."""

    def __init__(self, size=0, base=()):
        self.size = size
        self.stack = []  # (height, hash), left to right
        heights = [k for k in range(63, -1, -1) if size >> k & 1]
        if len(heights) != len(base):
            raise Invalid("base does not match first_seq")
        self.stack = list(zip(heights, base))
        self.roots = {size: self._root()}

    def _root(self):
        if not self.stack:
            return sha(b"")
        h = self.stack[-1][1]
        for _, x in reversed(self.stack[:-1]):
            h = node_hash(x, h)
        return h

    def push(self, leaf):
        h, height = leaf, 0
        while self.stack and self.stack[-1][0] == height:
            h = node_hash(self.stack.pop()[1], h)
            height += 1
        self.stack.append((height, h))
        self.size += 1
        self.roots[self.size] = self._root()


def split_line(line):
    if len(line) < 77 or line[-75:-66] != b',"hash":"' or not line.endswith(b'"}'):
        raise Invalid("not an audit record line")
    claimed = line[-66:-2].decode()
    c = line[:-75] + b"}"
    return c, claimed, json.loads(c)


def verify_sig(pem, msg, b64):
    if pem is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        for name, data in (("pub.pem", pem), ("msg", msg),
                           ("sig", base64.b64decode(b64 or ""))):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify",
                            os.path.join(d, "pub.pem"), "-signature",
                            os.path.join(d, "sig"), os.path.join(d, "msg")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0


class Pin:
    """--pin: the key a record names, used only if it is the pinned one."""

    def __init__(self, fp):
        if len(fp) != 64 or any(ch not in "0123456789abcdefABCDEF"
                                for ch in fp):
            raise ValueError("--pin wants 64 hex digits")
        self.fp, self.seen = fp.lower(), {}

    def key(self, pem):
        if not isinstance(pem, str):
            raise Invalid("it names no key: give --pubkey, not --pin")
        b = pem.encode()
        if b not in self.seen:
            r = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                               input=b, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
            self.seen[b] = r.returncode == 0 and \
                hashlib.sha256(r.stdout).hexdigest() == self.fp
        if not self.seen[b]:
            raise Invalid("signed by a key that is not the pinned one")
        return b


def trusted(pem, obj):
    """The key to check obj's signature with (None: not authenticated)."""
    return pem.key(obj.get("pubkey")) if isinstance(pem, Pin) else pem


def tree_head_msg(cp):
    ctr = "none" if cp["counter"] is None else str(cp["counter"])
    return ("warden-audit-tree-head/2\n%d\n%s\n%d\n%s\n%d\n" % (
        cp["tree_size"], cp["root"], cp["time_us"], ctr,
        cp["interval_s"])).encode()


class Walk:
    def __init__(self, pem, prev=ZEROS, seq=0, tree=None):
        self.pem, self.prev, self.seq = pem, prev, seq
        self.tree = tree or Tree()
        self.covered = self.tree.size
        self.kinds = {}  # leaf index -> is checkpoint
        self.ts = {}  # leaf index -> the record's ts
        self.interval = None  # of the last checkpoint verified
        self.last_cp_size = 0
        self.counter = None  # the TPM counter the last checkpoint carries
        self.records = self.checkpoints = 0

    def full(self, line):
        c, claimed, rec = split_line(line)
        if rec.get("seq") != self.seq + 1:
            raise Invalid("seq %s after %d" % (rec.get("seq"), self.seq))
        if rec.get("prev") != self.prev:
            raise Invalid("seq %d: prev does not match" % rec["seq"])
        if hashlib.sha256(self.prev.encode() + c).hexdigest() != claimed:
            raise Invalid("seq %d: hash does not match the record" % rec["seq"])
        cp = rec.get("kind") == "checkpoint"
        if cp and "tree_size" in rec:
            n = rec["tree_size"]
            ctr = rec.get("counter", False)
            if ctr is not None and (type(ctr) is not int or ctr < 0):
                raise Invalid("seq %d: malformed checkpoint" % rec["seq"])
            if n not in self.tree.roots or n >= rec["seq"]:
                raise Invalid("seq %d: checkpoint tree size" % rec["seq"])
            if self.tree.roots[n].hex() != rec["root"]:
                raise Invalid("seq %d: checkpoint root does not match"
                              % rec["seq"])
            if n < self.last_cp_size:
                raise Invalid("seq %d: checkpoint goes back" % rec["seq"])
            self.last_cp_size = n
            if None not in (ctr, self.counter) and ctr < self.counter:
                raise Invalid("seq %d: checkpoint counter %d goes back from "
                              "%d" % (rec["seq"], ctr, self.counter))
            self.checkpoints += 1
            ok = verify_sig(trusted(self.pem, rec), tree_head_msg(rec),
                            rec.get("signature"))
            if ok is False:
                raise Invalid("seq %d: checkpoint signature" % rec["seq"])
            if ctr is not None:
                self.counter = ctr
            if ok:
                self.covered = max(self.covered, n)
                self.interval = rec["interval_s"]
        elif cp:  # format 1: "<seq>:<hash>" of the record before
            if rec.get("signed_seq") != rec["seq"] - 1 or \
                    rec.get("signed_hash") != self.prev:
                raise Invalid("seq %d: checkpoint (v1)" % rec["seq"])
            self.checkpoints += 1
            msg = ("%d:%s" % (rec["signed_seq"], rec["signed_hash"])).encode()
            ok = verify_sig(trusted(self.pem, rec), msg, rec.get("signature"))
            if ok is False:
                raise Invalid("seq %d: checkpoint signature" % rec["seq"])
            if ok:
                self.covered = max(self.covered, self.tree.size)
        self.kinds[self.tree.size] = cp
        self.ts[self.tree.size] = rec.get("ts")
        self.tree.push(leaf_hash(c))
        self.prev, self.seq = claimed, rec["seq"]
        self.records += 1
        return rec

    def stub(self, s):
        if set(s) != {"seq", "stub", "prev", "leaf", "hash"} or s["stub"] is not True:
            raise Invalid("not a stub")
        if s["seq"] != self.seq + 1 or s["prev"] != self.prev:
            raise Invalid("stub %s does not link" % s["seq"])
        self.kinds[self.tree.size] = False
        self.tree.push(bytes.fromhex(s["leaf"]))
        self.prev, self.seq = s["hash"], s["seq"]

    def uncovered(self):
        return [i for i in range(self.covered, self.tree.size)
                if not self.kinds.get(i)]

    def stale(self, now):
        """Records no checkpoint covers, older than the interval the last
        verified checkpoint promised plus 60 s: a checkpoint was removed."""
        if self.interval == 0:
            return False
        limit = (60 if self.interval is None else self.interval) + 60
        for i in self.uncovered():
            ts = self.ts.get(i)
            if ts:
                t = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(
                    tzinfo=timezone.utc).timestamp()
                return now - t > limit
        return False


def read_pem(path):
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def check_witness(path, w, cps, pem):
    """The log extends what the witness saw: each witnessed checkpoint
    (signed by the trusted key) stands at its seq, and the log's tree of
    its size has its root."""
    n = 0
    with open(path, "rb") as f:
        lines = [x for x in f.read().split(b"\n") if x]
    for line in lines:
        _, _, cp = split_line(line)
        if cp.get("kind") != "checkpoint" or "tree_size" not in cp:
            raise Invalid("%s: a line is not a format 2 checkpoint" % path)
        if verify_sig(trusted(pem, cp), tree_head_msg(cp),
                      cp.get("signature")) is False:
            raise Invalid("%s: the checkpoint of seq %s is not signed by the "
                          "trusted key" % (path, cp.get("seq")))
        if cps.get(cp.get("seq")) != line:
            raise Invalid("seq %s is not the checkpoint the witness holds"
                          % cp.get("seq"))
        root = w.tree.roots.get(cp["tree_size"])
        if root is None or root.hex() != cp["root"]:
            raise Invalid("the log's tree of %d records is not the one the "
                          "witness saw signed: history was rewritten"
                          % cp["tree_size"])
        n += 1
    return n


def verify_log(d, pem, witness=None, tpm_counter=None):
    w = Walk(pem)
    cps = {}  # seq -> checkpoint line, for --witness
    segs = sorted(glob.glob(os.path.join(d, "audit-[0-9]*.jsonl")))
    if not segs:
        return 2, "no segments"
    for path in segs:
        with open(path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            raise Invalid("%s: torn last line" % path)
        for line in data.split(b"\n")[:-1]:
            w.full(line)
            if witness is not None and b'"kind":"checkpoint"' in line:
                cps[w.seq] = line
    if witness is not None:
        check_witness(witness, w, cps, pem)
    if tpm_counter is not None and w.counter not in (tpm_counter,
                                                     tpm_counter + 1):
        raise Invalid("the last checkpoint carries counter %s but the TPM's "
                      "is %d: the log was rolled back (its newest records "
                      "removed) or is not this TPM's"
                      % ("none" if w.counter is None else w.counter,
                         tpm_counter))
    if pem is None:
        return 3, "CONSISTENT: %d records, not authenticated" % w.records
    if w.stale(time.time()):
        raise Invalid("records no checkpoint covers are older than the "
                      "checkpoint interval: checkpoints were removed")
    if w.uncovered():
        return 3, "CONSISTENT: %d records no checkpoint covers" % len(w.uncovered())
    return 0, "OK: %d records, %d checkpoints" % (w.records, w.checkpoints)


def in_full(ranges, seq):
    return any(a <= seq <= b for a, b in ranges)


def verify_export(path, pem):
    with open(path, "rb") as f:
        data = f.read()
    is_csv = data.startswith(b"# ")
    l1, l2, body = data.split(b"\n", 2)
    if is_csv:
        l1, l2 = l1[2:], l2[2:]
    man, sig = json.loads(l1), json.loads(l2)
    if man.get("kind") != "export" or man.get("format") != 2:
        return 2, "not a format 2 export"
    authentic = False
    if pem is not None:
        if not verify_sig(trusted(pem, man), b"warden-audit-export/2\n" + l1,
                          sig.get("signature")):
            raise Invalid("manifest signature")
        authentic = True
    if hashlib.sha256(body).hexdigest() != man["body_sha256"]:
        raise Invalid("body_sha256")
    first = man["first_seq"]
    before = first - 1 if first else 0
    tree = Tree(before, [bytes.fromhex(h) for h in man["base"]])
    w = Walk(pem, man["anchor"], before, tree)
    rows = body.decode().split("\n")
    if rows[-1] != "":
        raise Invalid("torn last row")
    rows = rows[:-1]
    if is_csv:
        if rows[0] != "seq,ts,kind,tenant,verdict,route,hash,record":
            raise Invalid("columns")
        rows = rows[1:]
    nfull = nstub = 0
    for row in rows:
        cols = None
        if is_csv:
            cols = next(csv.reader(io.StringIO(row)))
            if len(cols) != 8:
                raise Invalid("row")
            row = cols[7]
        obj = json.loads(row)
        if obj.get("stub") is True and "prev" in obj and len(obj) == 5:
            if in_full(man["full"], obj["seq"]):
                raise Invalid("seq %d hidden as a stub" % obj["seq"])
            w.stub(obj)
            nstub += 1
            shown = {"ts": "", "kind": "stub", "tenant": "", "verdict": "",
                     "route": ""}
            h = obj["hash"]
        else:
            rec = w.full(row.encode())
            if not in_full(man["full"], rec["seq"]):
                raise Invalid("seq %d not listed in full" % rec["seq"])
            if rec.get("kind") != "checkpoint":
                for key in ("tenant", "verdict"):
                    if man.get(key) is not None and rec.get(key) != man[key]:
                        raise Invalid("seq %d outside the filters" % rec["seq"])
            nfull += 1
            shown = {k: rec.get(k) if isinstance(rec.get(k), str) else ""
                     for k in ("ts", "kind", "tenant", "verdict", "route")}
            h = w.prev
        if cols is not None:
            want = [str(w.seq), shown["ts"], shown["kind"], shown["tenant"],
                    shown["verdict"], shown["route"], h]
            if cols[:7] != want:
                raise Invalid("seq %d: a column differs from its record" % w.seq)
    if (w.seq, w.prev, nfull, nstub) != (man["last_seq"], man["last_hash"],
                                         man["records"], man["stubs"]) or \
            w.tree.size != man["tree_size"] or \
            w.tree.roots[w.tree.size].hex() != man["root"]:
        raise Invalid("the rows do not end where the manifest says")
    if not authentic:
        return 3, "CONSISTENT: %d records, %d stubs" % (nfull, nstub)
    return 0, "OK: %d records, %d stubs" % (nfull, nstub)


def rfc_inclusion(index, size, leaf, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def rfc_consistency(first, second, first_hash, second_hash, path):
    """RFC 9162 2.1.4.2 (equal sizes and the empty tree need no path)."""
    if first == 0:
        return not path
    if first == second:
        return not path and first_hash == second_hash
    if first > second or not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def head(line, pem):
    c, claimed, cp = split_line(line.encode())
    if cp.get("kind") != "checkpoint" or "tree_size" not in cp:
        raise Invalid("not a format 2 checkpoint")
    ok = verify_sig(trusted(pem, cp), tree_head_msg(cp), cp.get("signature"))
    if ok is False:
        raise Invalid("checkpoint signature")
    return cp["tree_size"], bytes.fromhex(cp["root"]), ok


def verify_proof(path, pem):
    with open(path) as f:
        p = json.load(f)
    hashes = [bytes.fromhex(h) for h in p["path"]]
    if p.get("kind") == "inclusion_proof":
        c, claimed, rec = split_line(p["record"].encode())
        if hashlib.sha256(rec["prev"].encode() + c).hexdigest() != claimed:
            raise Invalid("record hash")
        size, root, ok = head(p["checkpoint"], pem)
        if not rfc_inclusion(rec["seq"] - 1, size, leaf_hash(c), hashes, root):
            raise Invalid("inclusion")
    elif p.get("kind") == "consistency_proof":
        a, ra, ok = head(p["first"], pem)
        b, rb, ok2 = head(p["second"], pem)
        ok = ok and ok2
        if not rfc_consistency(a, b, ra, rb, hashes):
            raise Invalid("consistency")
    else:
        return 2, "not a proof"
    return (0, "OK") if ok else (3, "CONSISTENT: not authenticated")


def main(argv):
    fn = {"log": verify_log, "export": verify_export, "proof": verify_proof}
    opts = {}
    rest = argv[3:]
    while len(rest) >= 2 and rest[0] in ("--pubkey", "--pin", "--witness",
                                         "--tpm-counter") \
            and rest[0] not in opts:
        opts[rest[0]] = rest[1]
        rest = rest[2:]
    if len(argv) < 3 or argv[1] not in fn or rest or \
            ("--pubkey" in opts and "--pin" in opts) or \
            (("--witness" in opts or "--tpm-counter" in opts) and
             argv[1] != "log") or \
            not opts.get("--tpm-counter", "0") or \
            any(ch not in "0123456789" for ch in opts.get("--tpm-counter", "")):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        pem = Pin(opts["--pin"]) if "--pin" in opts else \
            read_pem(opts.get("--pubkey"))
    except (OSError, ValueError) as e:
        print("%s" % e, file=sys.stderr)
        return 2
    try:
        if argv[1] == "log":
            ctr = opts.get("--tpm-counter")
            rc, msg = verify_log(argv[2], pem, opts.get("--witness"),
                                 None if ctr is None else int(ctr))
        else:
            rc, msg = fn[argv[1]](argv[2], pem)
    except Invalid as e:
        rc, msg = 1, "INVALID: %s" % e
    except (OSError, ValueError, KeyError, TypeError, IndexError,
            AttributeError) as e:
        rc, msg = 1, "INVALID: malformed (%s)" % e
    print(msg)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
