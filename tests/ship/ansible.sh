#!/usr/bin/env bash
# The Ansible role and playbooks: syntax, ansible-lint (production profile),
# and the configuration the role writes: rendered by Ansible through the
# role's own task, validated by the smtpgated under test, and a value
# smtpgated refuses fails the task and leaves the old file in place.
# Usage: ansible.sh SOURCE_DIR SMTPGATED
set -euo pipefail
src=$1 smtpgated=$2
work=$(mktemp -d /tmp/sgt$$ansible.XXXXXX)
trap 'rm -rf "$work"' EXIT
export ANSIBLE_CONFIG=$src/packaging/ansible/ansible.cfg ANSIBLE_ROLES_PATH=$src/packaging/ansible/roles
export ANSIBLE_LOCAL_TEMP=$work/tmp ANSIBLE_REMOTE_TEMP=$work/rtmp ANSIBLE_HOME=$work/home ANSIBLE_NOCOLOR=1
export PATH=$(dirname "$smtpgated"):$PATH
cd "$src/packaging/ansible"

ansible-playbook -i inventory.example.ini --syntax-check monitor.yml enforce.yml upgrade.yml
if command -v ansible-lint >/dev/null; then
    ansible-lint --offline --nocolor monitor.yml enforce.yml upgrade.yml roles/smtpgate
fi

cfg=$work/smtpgate.toml
ansible-playbook -i localhost, "$src/tests/ship/ansible-config.yml" -e "smtpgate_config_path=$cfg" >"$work/log" ||
    { cat "$work/log"; exit 1; }
grep -qx 'interfaces = \["eth0", "eth1"\]' "$cfg" || { echo "FAIL: interfaces not rendered:"; cat "$cfg"; exit 1; }
grep -qx 'action = "monitor"' "$cfg" || { echo "FAIL: the role does not start in monitor:"; cat "$cfg"; exit 1; }
smtpgated --check-config -c "$cfg"

cp "$cfg" "$work/before"
if ansible-playbook -i localhost, "$src/tests/ship/ansible-config.yml" -e "smtpgate_config_path=$cfg" \
    -e '{"smtpgate_ports": [25, 0]}' >"$work/log" 2>&1; then
    echo "FAIL: a configuration smtpgated refuses was written"; cat "$work/log"; exit 1
fi
grep -q "must hold port numbers 1..65535" "$work/log" || { echo "FAIL: smtpgated's reason not shown:"; cat "$work/log"; exit 1; }
cmp "$cfg" "$work/before" || { echo "FAIL: the refused configuration replaced the old one"; exit 1; }
echo "ansible: syntax, lint, rendered configuration valid, refused one not written"
