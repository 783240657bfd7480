# fleetauth's env-file parser: lists the names an env file assigns, or merges new assignments
# into it. POSIX awk only - mawk, gawk, busybox awk and BSD awk alike: no gawk extensions, no
# regex intervals, no length(array), no `delete array`, no /dev/stderr.
#
# The file is parsed the way sh reads it, as far as deciding what assigns what needs: single and
# double quotes (backslash escapes inside the latter), backslash escapes and backslash-newline
# outside quotes, `$(...)`, `${...}`, backquotes, comments (`#` at the start of a word), here-
# documents, statement separators (`;`, newline), the operators `&&` `||` `|` `&` `(` `)` and
# the reserved words opening and closing compound commands. A *statement* is one logical
# command, possibly spanning physical lines (a quoted value with newlines, a continuation).
# It is an *assignment statement* when it is one simple command, outside any compound command,
# made only of `NAME=value` words, or of `export` followed by `NAME=value` and `NAME` words; it
# assigns the NAMEs written with `=`. Nothing else counts as an assignment: not a command with
# an environment prefix (`NAME=value cmd`), not `export NAME`, not a word of a compound command
# (`a && b`, `a | b`, `a &`, `( )`, `{ }`, if/while/until/for/case, function bodies).
#
# mode=names: awk -v mode=names "$prog" [FILE]  (FILE or stdin)
#   stdout: each name that assignment statements assign, once, in order of first appearance, one
#   per line. Never a value. Exit 0.
#
# mode=merge: awk -v mode=merge -v names="A B" -v nonl=0|1 -v st_bad_input=N -v st_shadowed=M \
#                 "$prog" phase=new - phase=old FILE
#   stdin (phase=new): exactly one line `export NAME='value'` for each NAME of `names` (any
#   order), the value single-quoted (`'\''` for a quote), nothing else; else exit st_bad_input.
#   nonl=1: FILE's last line has no newline. stdout: the merged file, where
#   - an assignment statement assigning only managed names (and exporting nothing else) is
#     removed, and the new lines for the names it is the first to assign go in its place;
#     when it shares a physical line with other statements only its own text and `;` go, and the
#     new lines go right after that line (right before it when the statement is first on it and
#     others follow; refused when others precede and follow);
#   - an assignment statement assigning managed and unmanaged names (`export A=1 KEY=x`) loses
#     its managed words (`export A=1`) and, when first, gets the new line right after it;
#     refused when a managed word spans lines or a remaining word uses the removed name;
#   - names never assigned are appended at the end - or, when the file ends inside an unfinished
#     statement (unterminated quote, trailing `\` or `&&`, a here-document running to the end)
#     or an unclosed compound command, right before it: those lines are kept as they are;
#   - every other physical line is kept byte for byte (CR included); the last line keeps its
#     missing newline when it is kept and still last. Lines inside another variable's value are
#     never touched. Merging the result again with the same input gives the same result.
#   Refused (exit st_shadowed, nothing on stdout) also when, after the place of a new line, a
#   command would still change that variable: an assignment in a compound command, before a
#   special builtin (`NAME=v :`) or in an `export` with other words, an `unset`; and whenever a
#   managed name is made `readonly`. Then stderr has one line per problem, names and line
#   numbers only, e.g. `line 3 assigns NAME together with other variables; move it to a line of
#   its own`.
#   Nothing read on stdin ever goes anywhere but into the merged file on stdout.
#   -v drop="C D" (optional): names whose assignment statements are removed like the managed
#   ones', with no new line for them (stdin has none); refused (st_shadowed) when a command the
#   merge keeps would still set one (`--fix-shadowing` removes a variable that wins over the key).
#
# Exit statuses: 0; st_bad_input; st_shadowed; 2 when invoked wrongly (unknown mode, missing or
# non-numeric st_* or nonl, a name in `names` that is not an identifier, a merge operand without
# phase=) or on an internal inconsistency. Run it with LC_ALL=C: byte semantics everywhere (gawk
# in a UTF-8 locale gives the same output, but warns on stderr about bytes that are not UTF-8).

BEGIN {
    fatal = 0
    nl = 0
    if (mode == "names") {
        # nothing to check
    } else if (mode == "merge") {
        if (st_bad_input !~ /^[1-9][0-9]*$/ || st_shadowed !~ /^[1-9][0-9]*$/)
            usage("merge mode needs -v st_bad_input=N -v st_shadowed=N")
        if (nonl != "0" && nonl != "1")
            usage("merge mode needs -v nonl=0 or -v nonl=1")
        nn = 0
        given = split(names, given_names, " ")
        for (gi = 1; gi <= given; gi++) {
            if (given_names[gi] !~ /^[A-Za-z_][A-Za-z0-9_]*$/) usage("names must be shell identifiers")
            if (!(given_names[gi] in want)) { want[given_names[gi]] = 1; order[++nn] = given_names[gi] }
        }
        ndrop = split(drop, drop_names, " ")
        for (gi = 1; gi <= ndrop; gi++) {
            if (drop_names[gi] !~ /^[A-Za-z_][A-Za-z0-9_]*$/) usage("names must be shell identifiers")
            if (drop_names[gi] in want) usage("a name cannot be both merged and dropped")
            want[drop_names[gi]] = 1
            dropped[drop_names[gi]] = 1
        }
        newno = 0
        bad = ""
    } else {
        usage("-v mode must be names or merge")
    }
}

mode == "merge" && phase == "new" {
    newno++
    if (bad != "") next
    if (!match($0, /^export [A-Za-z_][A-Za-z0-9_]*='/)) {
        bad = "stdin line " newno " is not an export NAME='...' line"
        next
    }
    newname = substr($0, 8, RLENGTH - 9)
    if (RLENGTH == length($0) || substr($0, RLENGTH + 1) !~ /^([^']*'\\'')*[^']*'$/) {
        bad = "stdin line " newno " is not an export NAME='...' line"
        next
    }
    if (!(newname in want)) {
        bad = "stdin line " newno " assigns a name that is not managed"
        next
    }
    if (newname in repl) {
        bad = "stdin assigns " newname " twice"
        next
    }
    repl[newname] = $0
    next
}

mode == "merge" && phase != "old" {
    usage("merge mode reads phase=new - phase=old FILE")
}

{ L[++nl] = $0 }

END {
    if (fatal) exit 2
    if (mode == "merge") {
        if (bad == "")
            for (gi = 1; gi <= nn; gi++)
                if (!(order[gi] in repl)) { bad = "stdin has no line for " order[gi]; break }
        if (bad != "") {
            complain(bad)
            exit st_bad_input
        }
    }
    parse()
    classify()
    if (mode == "names") {
        for (gs = 1; gs <= ns; gs++) {
            if (!S_plain[gs]) continue
            for (gi = 1; gi <= S_nw[gs]; gi++) {
                gw = S_w[gs, gi]
                if (W_kind[gw] == "a" && !(W_name[gw] in seen)) {
                    seen[W_name[gw]] = 1
                    print W_name[gw]
                }
            }
        }
        exit 0
    }
    merge()
    if (nerr > 0) {
        for (gi = 1; gi <= nerr; gi++) complain(ERR[gi])
        exit st_shadowed
    }
    emit()
    exit 0
}

function usage(msg) {
    complain("envfile.awk: " msg)
    fatal = 1
    exit 2
}

function internal(msg) {
    complain("envfile.awk: internal error: " msg)
    fatal = 1
    exit 2
}

# To stderr without opening /dev/stderr (which would truncate a redirected file on Linux).
function complain(msg) {
    print msg | "cat 1>&2"
    close("cat 1>&2")
}

# The character at column i of s (n long), or "" past its end.
function ch(s, i, n) {
    return (i <= n) ? substr(s, i, 1) : ""
}

function rep(c, n,    r) {
    r = ""
    while (n > 0) {
        if (n % 2) r = r c
        c = c c
        n = int(n / 2)
    }
    return r
}

# How many characters from column i of s (n long) precede the first one matching the bracket
# expression re (n - i + 1 when none does). Looks at bounded windows, so that long lines with
# many tokens stay linear.
function span(s, i, n, re,    k, w) {
    k = i
    while (k <= n) {
        w = substr(s, k, (n - k < 512) ? n - k + 1 : 512)
        if (match(w, re)) return k + RSTART - 1 - i
        k += 512
    }
    return n - i + 1
}

# ---------------------------------------------------------------------------------------------
# The parser. Per physical line it records a class string CL[ln], one character per character
# of the line: `b` a blank between words, `c` a comment, `;` a statement separator, `w` anything
# else (words, operators, here-document bodies, continuation backslashes). Statements S_* and
# words W_* record where they start and end (line, column).

function parse(    ln, s, n, i, c, k) {
    csp = 0; cs[0] = "T"
    ns = 0; nw = 0
    in_stmt = 0; in_word = 0
    seg = 1; segwords = 0; cmdpos = 1; pending = 0
    depth = 0; incase = 0; blk = 0
    hd_n = 0; hd_i = 1; hd_on = 0
    lastcont = 0
    for (ln = 1; ln <= nl; ln++) {
        s = L[ln]; n = length(s)
        contprev[ln] = lastcont
        # Could a line be inserted before this one? Not inside a statement or compound command.
        LOK[ln] = (!in_stmt && csp == 0 && !hd_on && depth == 0)
        lastcont = 0
        cl = ""; cont = 0; prevc = "\n"
        if (hd_on) {
            heredoc_line(ln, s, n)
            CL[ln] = rep("w", n)
            continue
        }
        i = 1
        while (i <= n) {
            c = substr(s, i, 1)
            if (cs[csp] == "T") i = top(ln, s, n, i, c)
            else i = nested(ln, s, n, i, c, cs[csp])
        }
        if (length(cl) != n) internal("class of line " ln)
        CL[ln] = cl
        eol(ln)
    }
    # End of file: a statement still open (quote, continuation, operator, here-document) is kept
    # as it is; the shell would not see it end either.
    if (in_stmt) {
        if (csp > 0 || hd_on || lastcont || (pending && segwords == 0)) S_open[ns] = 1
        csp = 0
        endstmt()
    }
    # Where lines appended to the file must go instead: before an unfinished last statement, or
    # before a compound command still open at the end (`if` without `fi`).
    tail_at = 0
    if (ns > 0 && S_open[ns]) tail_at = S_l1[ns]
    if (depth > 0 && blk > 0) {
        # sh reads nothing of it but a syntax error: it is all kept as it is.
        for (k = blk; k <= ns; k++) S_open[k] = 1
        if (tail_at == 0 || S_l1[blk] < tail_at) tail_at = S_l1[blk]
    }
    while (tail_at > 1 && !LOK[tail_at]) tail_at--
}

# One step outside any quote; returns the next column.
function top(ln, s, n, i, c,    c2, j) {
    prevc = c
    if (c == " " || c == "\t") {
        endword()
        cl = cl "b"
        return i + 1
    }
    if (c == "#" && !in_word) {
        cl = cl rep("c", n - i + 1)
        return n + 1
    }
    if (c == ";") {
        endword()
        cl = cl ";"
        endstmt()
        return i + 1
    }
    if (c == "\\") {
        if (i == n) {
            # backslash-newline: the statement (and a word in progress) goes on.
            token(ln, i)
            cont = 1
            cl = cl "w"
            return i + 1
        }
        startword(ln, i)
        wext(ln, i + 1)
        cl = cl "ww"
        return i + 2
    }
    if (c == "&" || c == "|") {
        endword()
        token(ln, i)
        S_comp[ns] = 1
        c2 = ch(s, i + 1, n)
        newseg()
        if (c2 == c) {
            token(ln, i + 1)
            pending = 1
            cl = cl "ww"
            return i + 2
        }
        pending = (c == "|")
        cl = cl "w"
        return i + 1
    }
    if (c == "(" || c == ")") {
        endword()
        token(ln, i)
        S_comp[ns] = 1
        newseg()
        if (!incase) {
            if (c == "(") deeper()
            else if (depth > 0) depth--
        }
        cl = cl "w"
        return i + 1
    }
    if (c == "<" || c == ">") {
        endword()
        token(ln, i)
        SEGX[ns, seg] = 1
        cl = cl "w"
        c2 = ch(s, i + 1, n)
        if (c == "<" && c2 == "<" && ch(s, i + 2, n) != "<") {
            token(ln, i + 1)
            cl = cl "w"
            return heredoc_op(ln, s, n, i + 2)
        }
        if (c2 == "&" || c2 == "|" || c2 == ">" || c2 == "<") {
            token(ln, i + 1)
            cl = cl "w"
            return i + 2
        }
        return i + 1
    }
    if (c != "'" && c != "\"" && c != "`" && c != "$") {
        # An ordinary character, and the ordinary ones after it (`#` inside a word is one).
        j = i + span(s, i, n, "[ \t;&|()<>\\\\'\"`$]")
        startword(ln, i)
        wext(ln, j - 1)
        cl = cl rep("w", j - i)
        return j
    }
    startword(ln, i)
    wext(ln, i)
    cl = cl "w"
    if (c == "'") { push("S"); return i + 1 }
    if (c == "\"") { push("D"); return i + 1 }
    if (c == "`") { push("B"); return i + 1 }
    if (c == "$") {
        c2 = ch(s, i + 1, n)
        if (c2 == "(") { push("C"); wext(ln, i + 1); cl = cl "w"; return i + 2 }
        if (c2 == "{") { push("E"); wext(ln, i + 1); cl = cl "w"; return i + 2 }
    }
    return i + 1
}

# One step inside a quote, `$(`, `${` or backquotes (always inside a word); returns the next
# column. S: '...'  D: "..."  B: `...`  C: $(...)  E: ${...}  F: ${...} inside "..."
function nested(ln, s, n, i, c, t,    j) {
    if (t == "S") {
        j = i + span(s, i, n, "'")
        if (j > n) return take(ln, i, n)
        pop()
        return take(ln, i, j)
    }
    if (t == "D" || t == "B") {
        if (t == "D") j = i + span(s, i, n, "[\\\\\"`$]")
        else j = i + span(s, i, n, "[\\\\`]")
        if (j > n) return take(ln, i, n)
        if (j > i) take(ln, i, j - 1)
        c = substr(s, j, 1)
        if (c == "\\") {
            if (j == n) { cont = 1; return take(ln, j, j) }
            return take(ln, j, j + 1)
        }
        if (c == "$") return dollar(ln, s, n, j, "F")
        if (c == "`") {
            if (t == "B") pop()
            else push("B")
            return take(ln, j, j)
        }
        pop()    # the closing "
        return take(ln, j, j)
    }
    # C, E, F: the special characters one at a time, the others in runs.
    if (index("\\$`\"'(){}#<", c) == 0) {
        j = i + span(s, i, n, "[\\\\$`\"'(){}#<]")
        return take(ln, i, j - 1)
    }
    if (c == "\\") {
        if (i == n) { cont = 1; return take(ln, i, i) }
        return take(ln, i, i + 1)
    }
    if (c == "$") return dollar(ln, s, n, i, (t == "F") ? "F" : "E")
    if (c == "`") { push("B"); return take(ln, i, i) }
    if (c == "\"") { push("D"); return take(ln, i, i) }
    if (t == "F") {
        if (c == "}") pop()
        return take(ln, i, i)
    }
    if (c == "'") { push("S"); return take(ln, i, i) }
    if (t == "E") {
        if (c == "}") pop()
        return take(ln, i, i)
    }
    # t == "C"
    if (c == "#" && index(" \t\n;&|()", prevc) > 0) return take(ln, i, n)
    if (c == "(") { CD[csp]++; return take(ln, i, i) }
    if (c == ")") {
        if (--CD[csp] == 0) pop()
        return take(ln, i, i)
    }
    if (c == "<" && ch(s, i + 1, n) == "<" && ch(s, i + 2, n) != "<") {
        take(ln, i, i + 1)
        j = heredoc_op(ln, s, n, i + 2)
        if (j > i + 2) wext(ln, j - 1)
        return j
    }
    return take(ln, i, i)
}

# `$` at column i inside a word: `$(` opens a command substitution, `${` a parameter expansion
# (of kind `brace`: E unquoted, F inside double quotes).
function dollar(ln, s, n, i, brace,    c2) {
    c2 = ch(s, i + 1, n)
    if (c2 == "(") { push("C"); return take(ln, i, i + 1) }
    if (c2 == "{") { push(brace); return take(ln, i, i + 1) }
    return take(ln, i, i)
}

# Columns a..b belong to the current word.
function take(ln, a, b) {
    cl = cl rep("w", b - a + 1)
    wext(ln, b)
    prevc = substr(L[ln], b, 1)
    return b + 1
}

function push(t) { cs[++csp] = t; CD[csp] = 1 }
function pop() { if (csp > 0) csp-- }

# After `<<` (column i is just past it): the delimiter word; its body starts on the next line.
function heredoc_op(ln, s, n, i,    strip, d, c, j, found) {
    strip = 0
    if (ch(s, i, n) == "-") { strip = 1; token(ln, i); cl = cl "w"; i++ }
    while (i <= n && (substr(s, i, 1) == " " || substr(s, i, 1) == "\t")) { cl = cl "b"; i++ }
    d = ""; found = 0
    while (i <= n) {
        c = substr(s, i, 1)
        if (index(" \t;&|<>()", c) > 0) break
        found = 1
        if (c == "'" || c == "\"") {
            # A quoted part: up to its closing quote, or the end of the line.
            j = (i < n) ? index(substr(s, i + 1), c) : 0
            j = (j == 0) ? n : i + j
            if (j - i > 1) d = d substr(s, i + 1, j - i - 1)
            token(ln, j)
            cl = cl rep("w", j - i + 1)
            i = j + 1
            continue
        }
        if (c == "\\" && i < n) {
            d = d substr(s, i + 1, 1)
            token(ln, i + 1)
            cl = cl "ww"
            i += 2
            continue
        }
        d = d c
        token(ln, i)
        cl = cl "w"
        i++
    }
    if (found) { HDD[++hd_n] = d; HDS[hd_n] = strip }
    return i
}

# A line of a here-document body: part of the statement (and word) it belongs to.
function heredoc_line(ln, s, n,    t) {
    token(ln, n)
    if (in_word) wext(ln, n)
    t = s
    if (HDS[hd_i]) sub(/^\t+/, "", t)
    if (t == HDD[hd_i]) {
        hd_i++
        if (hd_i > hd_n) {
            hd_on = 0; hd_n = 0; hd_i = 1
            if (cs[csp] == "T" && !(pending && segwords == 0)) endstmt()
        }
    }
}

# End of a physical line.
function eol(ln) {
    if (cont) lastcont = 1
    if (cs[csp] != "T") {
        if (cs[csp] == "C" && hd_n >= hd_i) hd_on = 1
        return
    }
    if (cont) return
    endword()
    if (hd_n >= hd_i) { hd_on = 1; return }
    if (pending && segwords == 0) return
    endstmt()
}

# Column i of line ln is part of the current statement (which it starts if there is none).
function token(ln, i) {
    if (!in_stmt) {
        in_stmt = 1
        ns++
        S_l1[ns] = ln; S_c1[ns] = i
        S_comp[ns] = (depth > 0)
        S_open[ns] = 0
    }
    S_l2[ns] = ln; S_c2[ns] = i
}

function startword(ln, i) {
    token(ln, i)
    if (in_word) return
    in_word = 1
    nw++
    W_s[nw] = ns; W_seg[nw] = seg
    W_l1[nw] = ln; W_c1[nw] = i
    W_l2[nw] = ln; W_c2[nw] = i
    W_res[nw] = 0
    segwords++
    pending = 0
}

function wext(ln, i) {
    token(ln, i)
    W_l2[nw] = ln; W_c2[nw] = i
}

# A compound command opens; blk is the statement that opened the outermost one.
function deeper() {
    if (depth == 0) blk = ns
    depth++
}

function newseg() { seg++; segwords = 0; cmdpos = 1 }

function endstmt() {
    endword()
    if (in_stmt) {
        if (depth > 0) S_comp[ns] = 1
        S_nseg[ns] = seg
        in_stmt = 0
    }
    seg = 1; segwords = 0; cmdpos = 1; pending = 0
}

# The word in progress ends: its text, and the reserved words that make a compound command.
function endword(    w, t) {
    if (!in_word) return
    in_word = 0
    w = nw
    t = wtext(w)
    W_t[w] = t
    if (!cmdpos) return
    cmdpos = 0
    if (t == "if" || t == "while" || t == "until" || t == "{") {
        deeper(); S_comp[ns] = 1; W_res[w] = 1; cmdpos = 1
    } else if (t == "then" || t == "else" || t == "elif" || t == "do" || t == "!") {
        S_comp[ns] = 1; W_res[w] = 1; cmdpos = 1
    } else if (t == "fi" || t == "done" || t == "}") {
        if (depth > 0) depth--
        S_comp[ns] = 1; W_res[w] = 1
    } else if (t == "for" || t == "case") {
        deeper(); S_comp[ns] = 1; W_res[w] = 1; SEGX[ns, seg] = 1
        if (t == "case") incase++
    } else if (t == "esac") {
        if (depth > 0) depth--
        if (incase > 0) incase--
        S_comp[ns] = 1; W_res[w] = 1
    }
}

function wtext(w,    l, t) {
    if (W_l1[w] == W_l2[w]) return substr(L[W_l1[w]], W_c1[w], W_c2[w] - W_c1[w] + 1)
    t = substr(L[W_l1[w]], W_c1[w])
    for (l = W_l1[w] + 1; l < W_l2[w]; l++) t = t "\n" L[l]
    return t "\n" substr(L[W_l2[w]], 1, W_c2[w])
}

# ---------------------------------------------------------------------------------------------
# Classification. S_plain[s]: an assignment statement. W_kind: "x" the `export`, "a" NAME=value,
# "e" a bare NAME after export. W_name: the NAME. S_w[s, i], i <= S_nw[s]: its words.
# Other statements can still change a variable when sourced; for the shadowing check they record
# O_w[s, i], i <= O_nw[s], with W_kind "a" (an assignment in a compound command, or before a
# special builtin: `NAME=v :` persists in a POSIX shell, or in an `export` with other words),
# "r" (`readonly NAME`) or "u" (`unset`).

function classify(    w, s, g, key, i, n, t, ok, first, t1, k) {
    for (w = 1; w <= nw; w++) {
        if (W_res[w] || S_open[W_s[w]]) continue
        key = W_s[w] SUBSEP W_seg[w]
        SGN[key]++
        SG[key, SGN[key]] = w
    }
    for (s = 1; s <= ns; s++) {
        S_plain[s] = 0; S_nw[s] = 0; O_nw[s] = 0
        if (S_open[s]) continue
        for (g = 1; g <= S_nseg[s]; g++) {
            key = s SUBSEP g
            n = SGN[key]
            if (n == 0 || SEGX[key]) continue
            first = SG[key, 1]
            ok = 1
            for (i = 1; i <= n && ok; i++) {
                w = SG[key, i]
                t = cooked(w)
                if (i == 1 && W_t[w] == "export" && n > 1) {
                    W_kind[w] = "x"
                } else if (match(t, /^[A-Za-z_][A-Za-z0-9_]*=/)) {
                    W_kind[w] = "a"; W_name[w] = substr(t, 1, RLENGTH - 1)
                } else if (W_kind[first] == "x" && t ~ /^[A-Za-z_][A-Za-z0-9_]*$/) {
                    W_kind[w] = "e"; W_name[w] = t
                } else {
                    ok = 0
                }
            }
            if (ok && !S_comp[s] && S_nseg[s] == 1) {
                S_plain[s] = 1
                S_nw[s] = n
                for (i = 1; i <= n; i++) S_w[s, i] = SG[key, i]
                continue
            }
            if (ok) {
                for (i = 1; i <= n; i++)
                    if (W_kind[SG[key, i]] == "a") O_w[s, ++O_nw[s]] = SG[key, i]
                continue
            }
            t1 = W_t[first]
            if (t1 == "export") {
                # `export A=1 $MORE`: its assignments still happen
                for (i = 2; i <= n; i++) {
                    w = SG[key, i]
                    if (!match(cooked(w), /^[A-Za-z_][A-Za-z0-9_]*=/)) continue
                    W_kind[w] = "a"; W_name[w] = substr(cooked(w), 1, RLENGTH - 1)
                    O_w[s, ++O_nw[s]] = w
                }
                continue
            }
            if (t1 == "readonly" || t1 == "unset") {
                for (i = 2; i <= n; i++) {
                    w = SG[key, i]
                    t = cooked(w)
                    if (t1 == "unset" && t == "-f") break
                    if (match(t, /^[A-Za-z_][A-Za-z0-9_]*=/)) W_name[w] = substr(t, 1, RLENGTH - 1)
                    else if (t ~ /^[A-Za-z_][A-Za-z0-9_]*$/) W_name[w] = t
                    else continue
                    W_kind[w] = (t1 == "readonly") ? "r" : "u"
                    O_w[s, ++O_nw[s]] = w
                }
                continue
            }
            # NAME=v ... before a special builtin
            k = 0
            while (k < n && cooked(SG[key, k + 1]) ~ /^[A-Za-z_][A-Za-z0-9_]*=/) k++
            if (k == 0 || k == n) continue
            if (index(" : . break continue eval exec exit export readonly return set shift times trap unset ", " " W_t[SG[key, k + 1]] " ") == 0) continue
            for (i = 1; i <= k; i++) {
                w = SG[key, i]
                match(cooked(w), /^[A-Za-z_][A-Za-z0-9_]*=/)
                W_kind[w] = "a"; W_name[w] = substr(cooked(w), 1, RLENGTH - 1)
                O_w[s, ++O_nw[s]] = w
            }
        }
    }
}

# A word's text without its backslash-newlines.
function cooked(w,    t) {
    t = W_t[w]
    if (index(t, "\\\n")) gsub(/\\\n/, "", t)
    return t
}

# ---------------------------------------------------------------------------------------------
# The merge: deletions (DM[ln], a string of 0/1 per column; HASDEL[ln]), insertions before and
# after lines (INS_B, INS_A), problems (ERR).

function merge(    s, i, w, nm, um, nh, removed, t, rx, after, before, lines, tail, nmw) {
    nerr = 0
    for (s = 1; s <= ns; s++) {
        if (S_open[s] || !S_plain[s]) continue
        nm = 0; um = 0
        split("", removed)
        for (i = 1; i <= S_nw[s]; i++) {
            w = S_w[s, i]
            if (W_kind[w] == "x") continue
            if (W_kind[w] == "a" && (W_name[w] in want)) { nm++; removed[W_name[w]] = 1 }
            else if (!(W_kind[w] == "e" && (W_name[w] in want))) um++
        }
        if (nm == 0) continue
        if (um == 0) {
            delete_statement(s)
        } else {
            for (i = 1; i <= S_nw[s]; i++) {
                w = S_w[s, i]
                if (W_kind[w] == "a" && (W_name[w] in want)) {
                    if (W_l1[w] != W_l2[w])
                        problem("line " W_l1[w] " assigns " W_name[w] " together with other variables; move it to a line of its own")
                    else
                        delete_word(s, w)
                    continue
                }
                if (W_kind[w] == "x") continue
                t = W_t[w]
                for (nh in removed) {
                    rx = "[$][{]?" nh "([^A-Za-z0-9_]|$)"
                    if (t ~ rx)
                        problem("line " W_l1[w] " assigns " nh " together with other variables that use it; move it to a line of its own")
                }
            }
        }
        nh = 0
        for (i = 1; i <= S_nw[s]; i++) {
            w = S_w[s, i]
            if (W_kind[w] == "a" && (W_name[w] in want) && !(W_name[w] in placed) && !(W_name[w] in dropped)) {
                placed[W_name[w]] = s
                P[s, ++nh] = W_name[w]
            }
        }
        P_n[s] = nh
    }
    # Where the new lines go, now that every deletion is known. AT[name]: the new line runs
    # just before line AT[name] would.
    for (s = 1; s <= ns; s++) {
        if (!P_n[s]) continue
        lines = ""
        for (i = 1; i <= P_n[s]; i++) lines = lines repl[P[s, i]] "\n"
        after = !kept_w(S_l2[s], S_c2[s] + 1, length(L[S_l2[s]]))
        before = !kept_w(S_l1[s], 1, S_c1[s] - 1) && !kept_cont(S_l1[s])
        if (after) {
            INS_A[S_l2[s]] = INS_A[S_l2[s]] lines
            for (i = 1; i <= P_n[s]; i++) AT[P[s, i]] = S_l2[s] + 1
        } else if (before) {
            INS_B[S_l1[s]] = INS_B[S_l1[s]] lines
            for (i = 1; i <= P_n[s]; i++) AT[P[s, i]] = S_l1[s]
        } else {
            problem("line " S_l1[s] " assigns " P[s, 1] " between other commands on the same line; move it to a line of its own")
        }
    }
    tail = ""
    for (i = 1; i <= nn; i++) {
        if (order[i] in placed) continue
        tail = tail repl[order[i]] "\n"
        AT[order[i]] = (tail_at > 0) ? tail_at : nl + 1
    }
    TAIL = ""
    if (tail != "") {
        if (tail_at > 0) INS_B[tail_at] = INS_B[tail_at] tail
        else TAIL = tail
    }
    # Commands that would change a managed variable after its new line has run.
    for (s = 1; s <= ns; s++) {
        if (S_open[s]) continue
        for (i = 1; i <= O_nw[s]; i++) {
            w = O_w[s, i]
            nmw = W_name[w]
            if (!(nmw in want)) continue
            if (W_kind[w] == "r")
                problem("line " W_l1[w] " makes " nmw " read-only, so a new value cannot be set; remove that")
            else if ((nmw in dropped) && W_kind[w] != "u")
                problem("line " W_l1[w] " assigns " nmw " in a compound command or before a special builtin, which fleetauth cannot remove; make it a plain assignment on a line of its own, or remove it")
            else if ((nmw in AT) && S_l1[s] >= AT[nmw] && W_kind[w] == "u")
                problem("line " W_l1[w] " unsets " nmw " after the line fleetauth writes; remove that")
            else if ((nmw in AT) && S_l1[s] >= AT[nmw])
                problem("line " W_l1[w] " assigns " nmw " in a compound command or before a special builtin, after the line fleetauth writes; make it a plain assignment on a line of its own")
        }
    }
}

function problem(msg,    i) {
    for (i = 1; i <= nerr; i++) if (ERR[i] == msg) return
    ERR[++nerr] = msg
}

function markdel(ln, a, b,    n) {
    HASDEL[ln] = 1
    if (a > b) return
    n = length(L[ln])
    if (DM[ln] == "") DM[ln] = rep("0", n)
    DM[ln] = ((a > 1) ? substr(DM[ln], 1, a - 1) : "") rep("1", b - a + 1) ((b < n) ? substr(DM[ln], b + 1) : "")
}

# The statement's text goes, with the `;` that ends it (or the one before it when it is last).
function delete_statement(s,    l1, c1, l2, c2, l, j, k, cl1, cl2) {
    l1 = S_l1[s]; c1 = S_c1[s]; l2 = S_l2[s]; c2 = S_c2[s]
    if (l1 == l2) {
        markdel(l1, c1, c2)
    } else {
        markdel(l1, c1, length(L[l1]))
        for (l = l1 + 1; l < l2; l++) markdel(l, 1, length(L[l]))
        markdel(l2, 1, c2)
    }
    cl2 = CL[l2]
    j = c2 + 1
    while (ch(cl2, j, length(cl2)) == "b") j++
    if (ch(cl2, j, length(cl2)) == ";") {
        k = j + 1
        while (ch(cl2, k, length(cl2)) == "b") k++
        markdel(l2, c2 + 1, k - 1)
        return
    }
    cl1 = CL[l1]
    j = c1 - 1
    while (j > 0 && substr(cl1, j, 1) == "b") j--
    if (j > 0 && substr(cl1, j, 1) == ";") markdel(l1, j, c1 - 1)
}

# One word of a statement goes, with the blanks before it (after it when it is the first word).
function delete_word(s, w,    l, j, clx) {
    l = W_l1[w]
    clx = CL[l]
    if (S_w[s, 1] == w) {
        j = W_c2[w] + 1
        while (ch(clx, j, length(clx)) == "b") j++
        markdel(l, W_c1[w], j - 1)
    } else {
        j = W_c1[w] - 1
        while (j > 0 && substr(clx, j, 1) == "b") j--
        markdel(l, j + 1, W_c2[w])
    }
}

# Is any column a..b of line ln a kept part of a command (class w, not deleted)?
function kept_w(ln, a, b,    j, clx, d) {
    clx = CL[ln]; d = DM[ln]
    for (j = a; j <= b; j++)
        if (substr(clx, j, 1) == "w" && (d == "" || substr(d, j, 1) != "1")) return 1
    return 0
}

# Does line ln continue a kept backslash-newline of the line before?
function kept_cont(ln,    d) {
    if (ln <= 1 || !contprev[ln]) return 0
    d = DM[ln - 1]
    return d == "" || substr(d, length(d), 1) != "1"
}

function emit(    ln, out, lastnl) {
    lastnl = !(nonl == 1 && INS_A[nl] == "" && TAIL == "")
    for (ln = 1; ln <= nl; ln++) {
        if (INS_B[ln] != "") printf "%s", INS_B[ln]
        if (!(HASDEL[ln] && !kept_w(ln, 1, length(L[ln])) && !kept_cont(ln))) {
            out = (DM[ln] == "") ? L[ln] : masked(ln)
            if (ln == nl && !lastnl) printf "%s", out
            else printf "%s\n", out
        }
        if (INS_A[ln] != "") printf "%s", INS_A[ln]
    }
    if (TAIL != "") printf "%s", TAIL
}

function masked(ln,    s, d, n, i, j, r) {
    s = L[ln]; d = DM[ln]; n = length(s); r = ""
    i = 1
    while (i <= n) {
        if (substr(d, i, 1) == "1") { i++; continue }
        j = i
        while (j <= n && substr(d, j, 1) != "1") j++
        r = r substr(s, i, j - i)
        i = j
    }
    return r
}
