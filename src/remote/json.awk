# fleetauth member-side JSON lookup: what sits at a few JSON pointers of one file, in POSIX awk
# (mawk, gawk, busybox awk; no jq or node on members).
#
#   awk -v ptrs='/name /version' -v values=1 -f json.awk FILE
#
# prints one line per pointer of `ptrs` (space-separated; no `~` escapes), in order:
#   S<TAB>VALUE  a non-empty string (VALUE only with values=1, and only when it holds no escape;
#                U instead when it does)
#   E            an empty string
#   N            null
#   O            a number, boolean, object or array
#   -            nothing there
# When a key occurs twice, the last one counts (as serde_json reads it). When the file is not
# JSON this scanner understands (unbalanced, unterminated, over 1 MiB), it prints nothing and exits
# 2: the caller then does what it would do without the answer. With values=0 no value of the file
# is ever printed: credential files are checked that way.

{ buf = buf $0 "\n"; if (length(buf) > 1048576) { bad = 1; exit 2 } }

function fail() { bad = 1; exit 2 }

# A value begins at depth d: its path, and (for containers) the path of its members.
function value_path(    p) {
    if (d == 0) { if (top) fail(); top = 1; return "" }
    if (kind[d] == "a") { p = path[d] "/" idx[d]; idx[d]++; return p }
    if (!havekey) fail()
    havekey = 0
    return path[d] "/" key
}

function found(p, t) { res[p] = t }

END {
    if (bad) exit 2
    n = length(buf); i = 1; d = 0; top = 0; havekey = 0; wantkey = 0
    while (i <= n) {
        c = substr(buf, i, 1)
        if (c == " " || c == "\t" || c == "\n" || c == "\r") { i++; continue }
        if (c == "\"") {
            # a string: find its end, skipping escapes
            j = i + 1; esc = 0
            while (j <= n) {
                ch = substr(buf, j, 1)
                if (ch == "\\") { esc = 1; j += 2; continue }
                if (ch == "\"") break
                j++
            }
            if (j > n) fail()
            s = substr(buf, i + 1, j - i - 1)
            i = j + 1
            if (d > 0 && kind[d] == "o" && wantkey) {
                key = s; wantkey = 0; havekey = 1
                # a key must be followed by ':'
                while (i <= n && index(" \t\n\r", substr(buf, i, 1)) > 0) i++
                if (substr(buf, i, 1) != ":") fail()
                i++
                continue
            }
            p = value_path()
            if (s == "") found(p, "E")
            else if (esc) found(p, "U")
            else found(p, "S\t" s)
            continue
        }
        if (c == "{" || c == "[") {
            p = value_path()
            found(p, "O")
            d++
            kind[d] = (c == "{") ? "o" : "a"
            path[d] = p; idx[d] = 0
            wantkey = (c == "{")
            i++
            continue
        }
        if (c == "}" || c == "]") {
            if (d == 0 || kind[d] != ((c == "}") ? "o" : "a") || havekey) fail()
            d--; wantkey = 0
            i++
            continue
        }
        if (c == ",") {
            if (d == 0) fail()
            if (kind[d] == "o") wantkey = 1
            i++
            continue
        }
        # a literal: number, true, false, null
        j = i
        while (j <= n && index("+-.0123456789Eaeflnrstu", substr(buf, j, 1)) > 0) j++
        if (j == i) fail()
        lit = substr(buf, i, j - i)
        i = j
        p = value_path()
        found(p, (lit == "null") ? "N" : "O")
    }
    if (d != 0 || !top) exit 2
    k = split(ptrs, want, " ")
    for (m = 1; m <= k; m++) {
        if (!(want[m] in res)) { print "-"; continue }
        r = res[want[m]]
        if (!values && substr(r, 1, 1) == "S") r = "S"
        print r
    }
}
