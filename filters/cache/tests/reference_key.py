"""An independent implementation of the cache key of KEYS.md (Python standard library only).

Reads vector files (tests/vectors/*.json) and prints, for each, `<file> <canonical-ok> <key-ok>`;
exits 1 when any vector disagrees. Run by tests/vectors.rs.

    python3 reference_key.py VECTOR.json...
"""

import decimal
import hashlib
import json
import sys


class Int(int):
    """An integer literal from the input (kept apart from floats)."""


def parse_int(text):
    value = int(text)
    if -(2**63) <= value < 2**64:
        return Int(value)
    return float(value)


def es_number(x: float) -> str:
    """ECMAScript Number.prototype.toString of a double (RFC 8785 3.2.2.3)."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    digits_tuple = decimal.Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    k = len(digits)
    n = digits_tuple.exponent + k  # x = 0.d1..dk * 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exp = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + mantissa + "e" + ("+" if exp >= 0 else "-") + str(abs(exp))


def string(s: str) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\b":
            out.append("\\b")
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        elif c == "\f":
            out.append("\\f")
        elif c == "\r":
            out.append("\\r")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def canonical(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Int):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return es_number(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-8"))
        return "{" + ",".join(string(k) + ":" + canonical(x) for k, x in items) + "}"
    raise TypeError(type(v))


MISSING = object()


def select(doc, path: str):
    """`$.a`, `$['a.b']`, `$.a[0]`; MISSING when nothing is selected."""
    assert path.startswith("$")
    rest, current, first = path[1:], doc, True
    while rest:
        if rest[0] == ".":
            end = len(rest)
            for i in range(1, len(rest)):
                if rest[i] in ".[":
                    end = i
                    break
            step, rest = rest[1:end], rest[end:]
        else:
            close = rest.index("]")
            inner, rest = rest[1:close], rest[close + 1:]
            step = inner[1:-1] if inner[:1] in "'\"" else int(inner)
        if isinstance(step, str):
            if not isinstance(current, dict) or step not in current:
                return MISSING
            current = current[step]
        else:
            if not isinstance(current, list) or step >= len(current):
                return MISSING
            current = current[step]
        first = False
    return current


def document(vector) -> str:
    request, config = vector["request"], vector["config"]
    body = json.loads(request["body"], parse_int=parse_int)
    doc = {
        "v": Int(1),
        "protocol": request["protocol"],
        "route": request.get("route"),
        "backend": request.get("backend"),
        "stream": bool(request.get("stream", False)),
        "caller": {k: v for k, v in request.get("caller", {}).items() if v is not None},
        "headers": {},
    }
    sent = {name.lower(): value for name, value in request.get("headers", {}).items()}
    for name in config.get("headers", []):
        if name.lower() in sent:
            doc["headers"][name.lower()] = sent[name.lower()]
    paths = config.get("json_paths", [])
    if paths:
        doc["body"] = {}
        for path in paths:
            value = select(body, path)
            if value is not MISSING:
                doc["body"][path] = value
    else:
        doc["body"] = body
    return canonical(doc)


def main() -> int:
    bad = 0
    for name in sys.argv[1:]:
        with open(name, encoding="utf-8") as f:
            vector = json.load(f)
        text = document(vector)
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        ok_text, ok_key = text == vector["canonical"], key == vector["key"]
        print(name, ok_text, ok_key)
        if not (ok_text and ok_key):
            print("  expected", vector["canonical"], vector["key"])
            print("  got     ", text, key)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
