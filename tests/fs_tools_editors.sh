#!/usr/bin/env bash
# How people edit config files: vim (every backup/swap strategy), nano, ed,
# shell > and >>, tee and tee -a.  Each edit runs on a plain directory and on
# the mount; the mount must end up identical (names, bytes, mode, owner) and
# the edited file's history must grow by exactly one version per save whose
# bytes are the new file; older versions never change.
#
# Editor leftovers: vim's "4913" write probe, its "file~" write backup and
# its ".file.swp" swap file are real files for a moment, so they are real
# names in history (.versions/DIR lists every name that ever existed).  What
# is asserted: none of them is live afterwards, none is listed by
# `verconf log` (live paths), the probe never held bytes, and the backup holds
# only the previous bytes of the file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs_tools_lib.sh"
command -v vim >/dev/null || fail "vim missing (tools/bootstrap.sh installs vim-tiny)"
mount_fs

ORIG=$'a=1\nb=2\n'
NEW=$'a=9\nb=2\n'
orig_sha=$(printf '%s' "$ORIG" | sha256sum | cut -c1-12)
new_sha=$(printf '%s' "$NEW" | sha256sum | cut -c1-12)

# A config file as an admin leaves it: 0640, owned by 5:6.
setup() { printf '%s' "$ORIG" >app.conf && chown 5:6 app.conf && chmod 640 app.conf; }

# vim, non-interactively: substitute, write, quit.  -u NONE: no vimrc;
# backupskip is emptied because its default skips /tmp/*, where tests run.
vim_edit() {
	timeout 20 vim -Nu NONE -i NONE -es -c "set backupskip= directory=$T/swap// $1" \
		-c '%s/a=1/a=9/' -c 'wq' app.conf </dev/null
}
mkdir -p "$T/swap"

# The common checks of an edit of S/app.conf that should leave app.conf with
# NEW, 0640 5:6, exactly one new version, nothing else live.
edited() { # S WHAT BEFORE [COUNT]
	same_as_plain "$1" "$2"
	want "$(cat "$MNT/$1/app.conf")" "${NEW%$'\n'}" "$2: cat"
	want "$(stat -c '%a %u %g %s' "$MNT/$1/app.conf")" "640 5 6 8" "$2: stat"
	check_hist "$2" "$1/app.conf" "$3" "${4:-1}" "$new_sha"
}

# junk S WHAT NAME...: editor leftovers NAME may be in history, never live.
junk() {
	local s=$1 what=$2 n; shift 2
	for n; do
		[ ! -e "$MNT/$s/$n" ] || bad "$what: leftover $s/$n is live"
		! live_paths | grep -qxF "$s/$n" || bad "$what: verconf log lists leftover $s/$n"
	done
}

vim_case() { # S OPTIONS WHAT COUNT
	local s=$1 opts=$2 what=$3 count=$4 before
	in_both "$s" setup
	before=$(hist "$s/app.conf")
	in_both "$s" vim_edit "$opts"
	[ "$RC_MNT" -eq 0 ] || bad "$what: vim failed on the mount (exit $RC_MNT)"
	edited "$s" "$what" "$before" "$count"
	junk "$s" "$what" 4913 app.conf~ .app.conf.swp
	# The probe never carries bytes; the backup is the previous file only.
	local id
	for id in $(ls "$MNT/.versions/$s/4913" 2>/dev/null); do
		want "$(stat -c %s "$MNT/.versions/$s/4913/$id")" 0 "$what: vim's 4913 probe version $id size"
	done
	for id in $(ls "$MNT/.versions/$s/app.conf~" 2>/dev/null); do
		want "$(sha "$MNT/.versions/$s/app.conf~/$id")" "$orig_sha" "$what: backup version $id"
	done
	ok_if "$what"
}

# backupcopy=auto (vim's default): probe "4913", then rename app.conf to
# app.conf~, write a new app.conf, chown it back, delete the backup.  The
# new file is created as root and vim chowns it with two fchown calls (uid,
# then gid) after the write: each is a version, as on any filesystem the file
# passed through those owners.  Accepted: up to 3 versions, all holding the
# new bytes, none with a wider mode than the file's; the last is 0640 5:6.
vim_case vim_auto 'backupcopy=auto' "vim backupcopy=auto (4913 probe, rename backup)" 1+
[ -n "$(ls "$MNT/.versions/vim_auto/4913" 2>/dev/null)" ] ||
	echo "note: vim did not probe with 4913 (it decided without it)"
vim_case vim_no 'backupcopy=no' "vim backupcopy=no (rename backup)" 1+
# backupcopy=yes: copy to app.conf~, then overwrite app.conf in place (what
# file watchers want).  vim checks that the descriptor it writes through is
# the inode it stat'ed (E949 "File changed while writing" otherwise).
vim_case vim_yes 'backupcopy=yes' "vim backupcopy=yes (copy backup, overwrite in place)" 1
# No backup at all (coc.nvim's advice, and vim's default under /tmp):
# overwrite in place, the same inode check.
vim_case vim_nowb 'nowritebackup nobackup' "vim nowritebackup nobackup (overwrite in place)" 1

# 'backup' keeps app.conf~ (the old bytes) as a live file, as on any disk.
s=vim_keep
in_both $s setup
before=$(hist $s/app.conf)
in_both $s vim_edit 'backup backupcopy=no'
same_as_plain $s "vim backup (kept)"
check_hist "vim backup" $s/app.conf "$before" 1+ "$new_sha"
want "$(sha "$MNT/$s/app.conf~")" "$orig_sha" "vim backup: app.conf~ holds the old bytes"
ok_if "vim with a kept backup"

# Swap file in the same directory, written for sure (updatecount=1 and
# :preserve); listed while vim runs, gone after.  Its versions stay in
# history with the file's mode minus write bits: no wider than the file.
s=vim_swap
in_both $s setup
before=$(hist $s/app.conf)
swap_edit() {
	timeout 20 vim -Nu NONE -i NONE -es -c 'set backupskip= directory=. updatecount=1' \
		-c '%s/a=1/a=9/' -c 'preserve' -c "!ls -A > $T/during.\$\$" -c 'wq' app.conf </dev/null
}
in_both $s swap_edit
[ "$RC_MNT" -eq 0 ] || bad "vim swap: vim failed on the mount (exit $RC_MNT)"
grep -qx .app.conf.swp "$T"/during.* 2>/dev/null || bad "vim swap: no .app.conf.swp while vim ran"
edited $s "vim swap in the same directory" "$before" 1+
junk $s "vim swap" .app.conf.swp .app.conf.swx 4913 app.conf~
for id in $(ls "$MNT/.versions/$s/.app.conf.swp" 2>/dev/null); do
	m=$(stat -c %a "$MNT/.versions/$s/.app.conf.swp/$id")
	[ $((8#$m & 8#027)) -eq 0 ] || bad "vim swap: swap version $id mode $m is wider than the file's 0640"
done
ok_if "vim swap file in the same directory"

# Two saves in one session: two versions, the first one's bytes in between.
s=vim_twice
in_both $s setup
before=$(hist $s/app.conf)
twice() {
	timeout 20 vim -Nu NONE -i NONE -es -c "set backupskip= directory=$T/swap//" \
		-c '%s/a=1/a=5/' -c 'w' -c '%s/a=5/a=9/' -c 'wq' app.conf </dev/null
}
in_both $s twice
same_as_plain $s "vim two saves"
check_hist "vim two saves" $s/app.conf "$before" 2+ "$(printf 'a=5\nb=2\n' | sha256sum | cut -c1-12) $new_sha"
ok_if "vim two saves in one session"

# nano, driven through a private tmux server: type at the top, ^O Enter, ^X.
if command -v nano >/dev/null && command -v tmux >/dev/null; then
	TSOCK=verconf-test-$$
	trap 'tmux -L "$TSOCK" kill-server 2>/dev/null || true; cleanup' EXIT
	nano_edit() { # [nano flags]: change "a=1" to "a=9" at the top, save, exit
		local i
		tmux -L "$TSOCK" -f /dev/null new-session -d -x 80 -y 24 \
			"nano --ignorercfiles $* $PWD/app.conf" || return 1
		for i in $(seq 100); do tmux -L "$TSOCK" capture-pane -p | grep -q 'a=1' && break; sleep 0.05; done
		tmux -L "$TSOCK" send-keys Right Right Delete 9 C-o
		for i in $(seq 100); do tmux -L "$TSOCK" capture-pane -p | grep -q 'File Name to Write' && break; sleep 0.05; done
		tmux -L "$TSOCK" send-keys Enter
		for i in $(seq 100); do tmux -L "$TSOCK" capture-pane -p | grep -q 'Wrote' && break; sleep 0.05; done
		tmux -L "$TSOCK" capture-pane -p | grep -q 'Wrote 2 lines' || { tmux -L "$TSOCK" capture-pane -p >&2; tmux -L "$TSOCK" kill-server; return 1; }
		tmux -L "$TSOCK" send-keys C-x
		for i in $(seq 100); do tmux -L "$TSOCK" has-session 2>/dev/null || return 0; sleep 0.05; done
		tmux -L "$TSOCK" kill-server; return 1
	}
	for flags in "" "-B"; do
		s=nano${flags:+_backup}
		in_both $s setup
		before=$(hist $s/app.conf)
		in_both $s nano_edit $flags
		[ "$RC_MNT" -eq 0 ] || bad "nano${flags:+ $flags}: save failed on the mount"
		edited $s "nano${flags:+ $flags}" "$before"
		[ -z "$flags" ] || want "$(sha "$MNT/$s/app.conf~")" "$orig_sha" "nano -B: backup holds the old bytes"
		ok_if "nano${flags:+ $flags}"
	done
else
	echo "skip - nano (nano or tmux missing)"
fi

# ed: reads, writes in place.
s=ed
in_both $s setup
before=$(hist $s/app.conf)
ed_edit() { printf ',s/a=1/a=9/\nw\nq\n' | ed -s app.conf; }
in_both $s ed_edit
edited $s "ed" "$before"
ok_if "ed"

# Shell redirections and tee: one version per command, mode and owner kept.
s=shell
in_both $s setup
step() { # WHAT EXPECTED-CONTENT CMD: run CMD in both, compare, one version
	local what=$1 content=$2 before; shift 2
	before=$(hist $s/app.conf)
	in_both $s sh -c "$*"
	same_as_plain $s "$what"
	want "$(cat "$MNT/$s/app.conf")" "$content" "$what: cat"
	want "$(stat -c '%a %u %g' "$MNT/$s/app.conf")" "640 5 6" "$what: mode and owner kept"
	check_hist "$what" $s/app.conf "$before" 1 "$(printf '%s\n' "$content" | sha256sum | cut -c1-12)"
}
step 'shell >' 'x=1' 'echo x=1 > app.conf'
step 'shell >>' $'x=1\ny=2' 'echo y=2 >> app.conf'
step 'tee' 'z=3' 'echo z=3 | tee app.conf >/dev/null'
step 'tee -a' $'z=3\nw=4' 'echo w=4 | tee -a app.conf >/dev/null'
step 'printf >' $'multi\nline' "printf 'multi\nline\n' > app.conf"
ok_if "shell >, >>, tee, tee -a"

finish
