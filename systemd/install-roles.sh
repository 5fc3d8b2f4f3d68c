# shellcheck shell=bash
# Sourced by ../install: the two roles of a fleet (issue #8). A central host (`install --fleet`)
# orders certificates and delivers them over OpenSSH to remote hosts (`install --remote-only`),
# which run only privd and keyd and let the central deployd's key run one command:
# `certsepctl remote-serve`, as certsep-remote.

REMOTE_USER=certsep-remote
# What OpenSSH's authorized_keys and known_hosts accept of certsep (config/fields.ts SshPublicKey).
SSH_KEY_TYPES='ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa'

# A host keeps its role: a plain `install` (re-run after adding targets) on a remote or central
# host installs that role again. Changing a host's role goes through --uninstall.
settle_role() {
  local installed=
  if [ -e "$(r "$SYSUSERS_REMOTE")" ]; then installed=remote
  elif [ -e "$(r "$FLEET_DROPIN")" ]; then installed=fleet
  elif [ -e "$(r "$UNIT_DIR/certsep-acmed.service")" ]; then installed=standalone
  fi
  case $ROLE:$installed in
    standalone:remote) ROLE=remote; say "this host has the remote role (install --remote-only ran here): installing that again" ;;
    standalone:fleet) ROLE=fleet; say "this host delivers to remote hosts (install --fleet ran here): installing that again" ;;
    remote:standalone|remote:fleet)
      die "this host runs the whole suite: install --uninstall first (it keeps keys, certificates and the config), then install --remote-only" ;;
    fleet:remote) die "this host has the remote role: install --uninstall first, then install --fleet" ;;
  esac
  # shellcheck disable=SC2034 # ENTRY_UNITS is install's, which enables them
  if [ "$ROLE" = remote ]; then ENTRY_UNITS=("${REMOTE_ENTRY_UNITS[@]}"); fi
}

# --- remote: the account, the config template ---------------------------------------------------
create_remote_account() {
  apply_sysusers "$SOURCE/systemd/sysusers.d/certsep-remote.conf" "$SYSUSERS_REMOTE"
  # systemd-sysusers and useradd lock new accounts ("!*", "!"), and sshd without PAM refuses a
  # locked account even for a key; "*" is matched by no password, so the key alone logs in.
  if [ "$(awk -F: -v user="$REMOTE_USER" '$1 == user { print substr($2, 1, 1) }' "$(r /etc/shadow)")" = '!' ]; then
    in_root usermod -p '*' "$REMOTE_USER"
    say "set $REMOTE_USER's password field to * (no password logs in; its ssh key may)"
  fi
}

remote_config_template() {
  cat <<'EOF'
# certsep.yaml of a host with certsep's remote role (written by install --remote-only).
# The central host (install --fleet) orders this host's certificates and delivers them over ssh as
# users.remote, whose one command is `certsepctl remote-serve`. The key is made here by this host's
# keyd and never leaves it; this host's privd installs the chain into the targets below and checks
# and reloads the services below. The central host only names a certificate: which files, owners
# and services that means is decided here. See certsep.example.yaml for every option.
# Re-run install after adding targets: privd's sandbox opens exactly their directories.
users:
  remote: certsep-remote   # the ssh forced command's user; keyd and privd accept its calls

# Services privd may check and reload after installing a certificate, by name.
# services:
#   nginx:
#     check: [["nginx", "-t"]]
#     reload: { systemd: nginx.service, action: reload }

# Each entry has the same name, domains and keyTypes as the central host's entry that lists this
# host under hosts:, and no challenge: this host never talks to the CA.
certificates: []
# certificates:
#   - name: www
#     domains: [example.com, www.example.com]
#     keyTypes: [ec-p256]
#     targets:
#       - dir: /etc/nginx/certs/www
#         group: www-data
#         mode: "0640"
#         files: [fullchain, privkey]
#         services: [nginx]
EOF
}

# --- remote: authorized_keys --------------------------------------------------------------------
# Every --authorize-key is checked before anything is changed: one bad key changes nothing.
check_authorize_keys() {
  local key
  for key in "${AUTHORIZE_KEYS[@]}"; do
    if [[ $key == *$'\n'* || $key == *$'\r'* ]] || ! [[ $key =~ ^($SSH_KEY_TYPES)\ ([A-Za-z0-9+/]{16,}={0,3})(\ [^[:cntrl:]]*)?$ ]]; then
      die "--authorize-key takes one line \"TYPE BASE64 [COMMENT]\" of type ${SSH_KEY_TYPES//|/, } (the .pub file install --fleet prints), not: ${key:0:80}"
    fi
    # ssh-keygen decodes the key: a truncated or mistyped blob is refused here, not by sshd later.
    if command -v ssh-keygen >/dev/null && ! ssh-keygen -l -f - <<< "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}" >/dev/null 2>&1; then
      die "--authorize-key: ssh-keygen cannot read this ${BASH_REMATCH[1]} key (truncated or mistyped?): ${key:0:80}"
    fi
  done
}

# The key may run only the forced command, with none of ssh's extras (restrict: no forwarding,
# pty, X11, agent or ~/.ssh/rc). Its own comment stays when it is a plain name (install --fleet's
# "certsep-deployd@HOST" says which central host it is).
restricted_key_line() {
  local type blob rest comment=certsep-central
  read -r type blob rest <<< "$1"
  if [[ ${rest:-} =~ ^[A-Za-z0-9@._:+-]{1,64}$ ]]; then comment=$rest; fi
  printf 'command="%s remote-serve",restrict %s %s %s\n' "$CTL" "$type" "$blob" "$comment"
}

# root:root 0644 in a root 0755 directory: certsep-remote must not be able to change its own keys.
authorize_keys() {
  local dir key type blob rest tmp
  dir=$(dirname "$AUTHORIZED_KEYS")
  mkdir -p "$(r "$dir")"
  chown 0:0 "$(r "$dir")"
  chmod 0755 "$(r "$dir")"
  tmp=$(mktemp)
  if [ -f "$(r "$AUTHORIZED_KEYS")" ]; then cat "$(r "$AUTHORIZED_KEYS")" > "$tmp"; fi
  for key in "${AUTHORIZE_KEYS[@]}"; do
    read -r type blob rest <<< "$key"
    if awk -v type="$type" -v blob="$blob" '{ for (i = 1; i < NF; i++) if ($i == type && $(i + 1) == blob) found = 1 } END { exit !found }' "$tmp"; then
      say "already authorized: $type key $(key_fingerprint "$type $blob")"
    else
      restricted_key_line "$key" >> "$tmp"
      say "authorized $type key $(key_fingerprint "$type $blob") for $REMOTE_USER (remote-serve only)"
    fi
  done
  put_file "$tmp" "$AUTHORIZED_KEYS" 0644
  rm -f "$tmp"
  if [ ! -s "$(r "$AUTHORIZED_KEYS")" ]; then
    say "no key is authorized yet: run install --remote-only --authorize-key '<the key install --fleet printed>'"
  fi
}
key_fingerprint() { ssh-keygen -l -f - <<< "$1" 2>/dev/null | awk '{ print $2 }'; }

# --- remote: sshd -------------------------------------------------------------------------------
# The forced command twice: authorized_keys' command= and this ForceCommand, so neither a key
# line added by hand nor an edited authorized_keys gives certsep-remote a shell. ExposeAuthInfo
# hands remote-serve the key that logged in, whose fingerprint its audit records.
sshd_snippet() {
  cat <<EOF
# Written by certsep install --remote-only: the central certsep deployd logs in as $REMOTE_USER
# with a key from $AUTHORIZED_KEYS (root's file) and runs certsepctl remote-serve, nothing else.
Match User $REMOTE_USER
    AuthorizedKeysFile $AUTHORIZED_KEYS
    ExposeAuthInfo yes
    DisableForwarding yes
    PermitTTY no
    PermitUserRC no
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ForceCommand $CTL remote-serve
EOF
}

SSHD_CHANGED=
install_sshd_snippet() {
  local before=$CHANGED forced
  if [ ! -x "$(r /usr/sbin/sshd)" ]; then
    say "openssh-server is not installed: skipped $SSHD_SNIPPET (apt-get install openssh-server, then run install --remote-only again)"
    return
  fi
  if ! grep -qiE '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf([[:space:]]|$)' "$(r /etc/ssh/sshd_config)" 2>/dev/null; then
    say "WARNING: /etc/ssh/sshd_config does not Include /etc/ssh/sshd_config.d/*.conf, so $SSHD_SNIPPET would not be read: not written, and sshd_config left alone. Add that Include line at the top of sshd_config (Debian's has it), then run install --remote-only again"
    return
  fi
  sshd_snippet | put_text "$SSHD_SNIPPET" 0644
  [ "$CHANGED" = "$before" ] || SSHD_CHANGED=1
  # sshd -t insists on its privilege separation directory, which ssh.service makes only while it
  # runs (RuntimeDirectory=sshd): make it as Debian's init script does, or every check would fail.
  [ -d "$(r /run/sshd)" ] || install -d -m 0755 "$(r /run/sshd)"
  # A reload with a config sshd cannot read would stop sshd: a snippet that breaks it goes again.
  if ! in_root /usr/sbin/sshd -t >/dev/null 2>&1; then
    local why
    why=$(in_root /usr/sbin/sshd -t 2>&1 || true)
    remove_path "$SSHD_SNIPPET"
    if in_root /usr/sbin/sshd -t >/dev/null 2>&1; then die "sshd -t refuses $SSHD_SNIPPET, so it is removed again: $why"; fi
    die "sshd -t fails even without $SSHD_SNIPPET (fix sshd's config first): $why"
  fi
  # An earlier Match block (another sshd_config.d file) would win over this one for certsep-remote.
  forced=$(in_root /usr/sbin/sshd -T -C "user=$REMOTE_USER,host=certsep-install,addr=127.0.0.1" 2>/dev/null | awk '$1 == "forcecommand" { $1 = ""; print substr($0, 2) }')
  if [ "$forced" != "$CTL remote-serve" ]; then
    die "sshd's effective ForceCommand for $REMOTE_USER is \"$forced\", not \"$CTL remote-serve\": an earlier Match block in sshd's config wins over $SSHD_SNIPPET"
  fi
}

reload_sshd_if_changed() {
  [ -n "$SSHD_CHANGED" ] || return 0
  if systemd_running && systemctl is-active --quiet ssh.service; then
    systemctl reload ssh.service
    say "reloaded ssh.service"
  else
    say "ssh.service is not running here: $SSHD_SNIPPET applies when sshd next starts"
  fi
}

install_remote_access() {
  authorize_keys
  install_sshd_snippet
  if [ -f "$(r /etc/ssh/ssh_host_ed25519_key.pub)" ]; then
    say "this host's ssh key, for hostKeys: of this host's entry under hosts: in the central certsep.yaml:"
    say "  $(awk '{ print $1, $2 }' "$(r /etc/ssh/ssh_host_ed25519_key.pub)")"
  fi
}

uninstall_remote_access() {
  local had_snippet=
  if [ -e "$(r "$SSHD_SNIPPET")" ]; then had_snippet=1; fi
  remove_path "$SSHD_SNIPPET"
  if [ -n "$had_snippet" ] && systemd_running && systemctl is-active --quiet ssh.service; then
    systemctl reload ssh.service
    say "reloaded ssh.service"
  fi
  remove_path "$SYSUSERS_REMOTE"
  remove_path "$TMPFILES_REMOTE"
}

# --- fleet: the central host --------------------------------------------------------------------
install_fleet() {
  put_file "$SOURCE/systemd/certsep-deployd-fleet.conf" "$FLEET_DROPIN" 0644
  create_deployd_ssh_key
}

# deployd's own key: ssh refuses an identity file that is not its user's alone. All of it is done
# as certsep-deploy, never as root: the directory is deployd's, so deployd could replace anything
# in it with a symlink (to /etc/shadow), and root's chown or chmod would follow that link. As
# deployd, a link leads nowhere deployd could not go; what is not a plain file is refused anyway.
create_deployd_ssh_key() {
  local made
  made=$(as_deployd sh -euc '
    ssh=$1 key=$1/id_ed25519
    umask 077
    for f in "$ssh" "$key" "$key.pub"; do
      if [ -L "$f" ] || { [ -e "$f" ] && [ "$f" != "$ssh" ] && [ ! -f "$f" ]; }; then
        echo "$f is not a regular file or directory (a symbolic link?): deployd'"'"'s ssh directory" \
          "was changed; remove it and run install again" >&2
        exit 3
      fi
    done
    mkdir -p "$ssh"
    chmod 0700 "$ssh"
    if [ ! -e "$key" ]; then ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$key"; echo created; fi
    if [ ! -e "$key.pub" ]; then ssh-keygen -y -f "$key" > "$key.pub"; fi
    chmod 0600 "$key"
    chmod 0644 "$key.pub"
  ' sh "$DEPLOYD_SSH" "certsep-deployd@$(target_hostname)") || die "deployd's ssh key is not made (see above)"
  if [ "$made" = created ]; then
    CHANGED=$((CHANGED + 1))
    say "created $DEPLOYD_SSH/id_ed25519"
  fi
}
as_deployd() { in_root setpriv --reuid=certsep-deploy --regid=certsep-deploy --clear-groups -- "$@"; }
target_hostname() {
  if [ -s "$(r /etc/hostname)" ]; then head -n 1 "$(r /etc/hostname)"; else uname -n; fi
}

# The hosts: section's addresses (block or flow style), for the ssh-keyscan hints.
config_host_addresses() {
  local file
  file=$(r "$CONFIG")
  [ -f "$file" ] || return 0
  sed -e 's/[[:space:]]#.*$//' -e 's/^#.*$//' "$file" |
    awk '/^[^[:space:]]/ { in_hosts = ($0 ~ /^hosts:/) } in_hosts' |
    { grep -oE "(^|[[:space:]{,])address:[[:space:]]*[\"']?[^\"',}[:space:]]+" || true; } |
    sed -E "s/^.*address:[[:space:]]*[\"']?//" | sort -u
}

print_fleet_next_steps() {
  local pub address addresses
  # Read as deployd too: root reading through a link deployd planted would print root's file.
  pub=$(as_deployd sh -c 'read -r type blob comment < "$1" && printf "%s %s %s" "$type" "$blob" "$comment"' \
    sh "$DEPLOYD_SSH/id_ed25519.pub")
  say "deployd's ssh key: $pub"
  say "on each remote host, as root, from a certsep checkout:"
  say "  ./install --remote-only --authorize-key '$pub'"
  say "then list each remote host under hosts: in $CONFIG; its hostKeys: are what that install"
  say "printed, or (checked against that) what ssh-keyscan sees from here:"
  addresses=$(config_host_addresses)
  for address in ${addresses:-HOST}; do say "  ssh-keyscan -t ed25519 $address"; done
}
