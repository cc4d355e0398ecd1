#!/usr/bin/env bash
# tf-check.sh — every check of terraform/, offline:
#   - terraform fmt -check over the tree;
#   - init -backend=false, validate and `terraform test` (mock providers) in every
#     module and environment root;
#   - a real apply -> plan (must show no changes) -> destroy of envs/local against
#     aigw-hcloudfake, a fake Hetzner Cloud API on 127.0.0.1, checking that each
#     worker's user_data (as the API received it) installs python3-torch and
#     the release's reference algorithms and registers them before the worker;
#   - every rendered cloud-init document checked by cloud-init's own schema
#     validator (Debian's cloud-init package, unpacked, not installed).
# Providers come from scripts/tf-mirror.sh. Prints `N passed, N failed` and exits
# non-zero on any failure. Logs go to $AIGW_TF_LOGS (default: a temp dir).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tf=$root/terraform
cache=$tf/.mirror # git-ignored: providers, the fake's binary, cloud-init
logs=${AIGW_TF_LOGS:-$(mktemp -d -t aigw-tf-check.XXXXXX)}
mkdir -p "$logs"
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
export GOFLAGS=${GOFLAGS:--buildvcs=false}

passed=0
failed=0
t_start=$SECONDS

# check NAME CMD... runs CMD with its output in a log; counts one pass or fail.
check() {
	local name=$1 log
	shift
	log=$logs/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name (log: $log)"
		tail -n 25 "$log" | sed 's/^/     | /'
	fi
}

finish() {
	echo "tf-check: $((SECONDS - t_start))s, logs in $logs"
	echo "$passed passed, $failed failed"
	[[ $failed -eq 0 ]]
	exit
}

# Debian packages this script needs; installed (as root) when missing.
apt_updated=
apt_install() {
	[[ $(id -u) -eq 0 ]] || { echo "tf-check: $* missing; install it (apt-get install $*) or run as root"; return 1; }
	if [[ -z $apt_updated ]]; then
		apt-get update -q >/dev/null || return 1
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
for tool in curl jq; do
	command -v "$tool" >/dev/null || apt_install "$tool" || { failed=$((failed + 1)); finish; }
done
for tool in terraform go; do
	command -v "$tool" >/dev/null || { echo "tf-check: $tool is not on the PATH"; failed=$((failed + 1)); finish; }
done

# ---- providers --------------------------------------------------------------
check "providers built into terraform/.mirror" "$root/scripts/tf-mirror.sh"
[[ $failed -eq 0 ]] || finish
eval "$("$root/scripts/tf-mirror.sh" --env)"

# ---- static checks and terraform test ---------------------------------------
check "terraform fmt -check" terraform -chdir="$tf" fmt -check -recursive -diff

# tf_test DIR: terraform test; adds its own "N passed, M failed" to the totals.
tf_test() {
	local dir=$1 log out p f
	log=$logs/test_$(printf '%s' "$dir" | tr '/' '_').log
	terraform -chdir="$tf/$dir" test -no-color >"$log" 2>&1
	local rc=$?
	out=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [[ -n $out ]]; then
		p=${out%% passed*}
		f=${out#*passed, }
		f=${f%% failed*}
	else
		p=0 f=1
	fi
	[[ $rc -ne 0 && $f -eq 0 ]] && f=1
	passed=$((passed + p))
	failed=$((failed + f))
	if [[ $f -eq 0 ]]; then
		echo "ok   terraform test $dir ($p passed)"
	else
		echo "FAIL terraform test $dir ($p passed, $f failed; log: $log)"
		grep -E 'Error|fail' "$log" | head -n 25 | sed 's/^/     | /'
	fi
}

roots=()
for d in "$tf"/modules/*/ "$tf"/envs/*/; do
	roots+=("${d#"$tf"/}")
done
for dir in "${roots[@]}"; do
	dir=${dir%/}
	check "init $dir" terraform -chdir="$tf/$dir" init -backend=false -input=false -no-color
	check "validate $dir" terraform -chdir="$tf/$dir" validate -no-color
	tf_test "$dir"
done

# ---- the fake Hetzner Cloud API ----------------------------------------------
fake=$cache/bin/aigw-hcloudfake
check "build aigw-hcloudfake" bash -c "cd '$root/hcloudfake' && GOWORK=off CGO_ENABLED=0 go build -o '$fake' ./cmd/aigw-hcloudfake"

# ---- cloud-init's schema validator (Debian packages, unpacked) ---------------
ci_root=$cache/cloud-init
ci_pkgs=(cloud-init python3-jsonschema python3-attr python3-pyrsistent python3-jinja2 python3-markupsafe
	python3-configobj python3-json-pointer python3-jsonpatch python3-netifaces python3-requests
	python3-urllib3 python3-idna python3-certifi python3-chardet python3-charset-normalizer python3-six
	python3-oauthlib python3-serial python3-yaml)
fetch_cloud_init() {
	[[ -f $ci_root/.complete ]] && return 0
	if [[ ! -x /usr/bin/python3 ]]; then
		apt_install python3 || return 1
	fi
	local dl
	dl=$(mktemp -d)
	chmod 0777 "$dl" # apt's _apt user downloads into it
	if ! (cd "$dl" && apt-get download "${ci_pkgs[@]}"); then
		# Stale or missing package lists (a fresh machine): update them, try again.
		[[ $(id -u) -eq 0 ]] || { echo "apt-get download failed; run apt-get update as root first"; return 1; }
		apt-get update -q && apt_updated=1 && (cd "$dl" && apt-get download "${ci_pkgs[@]}") || return 1
	fi
	rm -rf "$ci_root" && mkdir -p "$ci_root"
	for deb in "$dl"/*.deb; do dpkg -x "$deb" "$ci_root" || return 1; done
	rm -rf "$dl"
	touch "$ci_root/.complete"
}
cloud_init_schema() {
	PYTHONPATH=$ci_root/usr/lib/python3/dist-packages /usr/bin/python3 -m cloudinit.cmd.main schema --config-file "$1"
}
check "cloud-init schema validator (Debian cloud-init, unpacked)" fetch_cloud_init
# The validator must reject a broken document, or its "valid" means nothing.
printf '#cloud-config\npackages: 5\n' >"$logs/broken-cloud-init.yaml"
check "cloud-init validator rejects a broken document" bash -c "! PYTHONPATH='$ci_root/usr/lib/python3/dist-packages' /usr/bin/python3 -m cloudinit.cmd.main schema --config-file '$logs/broken-cloud-init.yaml'"

# ---- apply -> plan -> destroy of envs/local ------------------------------------
[[ -x $fake ]] || finish
work=$(mktemp -d -t aigw-tf-local.XXXXXX)
fake_pid=
cleanup() {
	[[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

token=$(head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 64)
printf '%s\n' "$token" >"$work/token"
chmod 0600 "$work/token"
"$fake" -addr 127.0.0.1:0 -token-file "$work/token" -url-file "$work/url" -v >"$logs/fake.stdout" 2>"$logs/fake.log" &
fake_pid=$!
for _ in $(seq 1 100); do [[ -s $work/url ]] && break; sleep 0.1; done
check "aigw-hcloudfake listening on loopback" grep -Eq '^http://127\.0\.0\.1:[0-9]+/v1$' "$work/url"
[[ -s $work/url ]] || finish
endpoint=$(cat "$work/url")
export TF_VAR_hcloud_token=$token TF_VAR_hcloud_endpoint=$endpoint
local_dir=$tf/envs/local
state=$work/terraform.tfstate

api() { curl -fsS -H "Authorization: Bearer $token" "$endpoint$1"; }

check "envs/local: terraform apply (fresh environment)" \
	terraform -chdir="$local_dir" apply -auto-approve -input=false -no-color -state="$state"
check "envs/local: plan after apply shows no changes (-detailed-exitcode)" \
	terraform -chdir="$local_dir" plan -detailed-exitcode -input=false -no-color -state="$state"

terraform -chdir="$local_dir" output -state="$state" -json >"$work/outputs.json" 2>"$logs/outputs.log"
check "envs/local: every server the outputs count exists in the API" bash -c \
	"want=\$(jq -r .server_count.value '$work/outputs.json'); got=\$(curl -fsS -H 'Authorization: Bearer $token' '$endpoint/servers?per_page=50' | jq '.servers | length'); echo \"outputs \$want, api \$got\"; [[ \$want -ge 8 && \$want == \$got ]]"
check "envs/local: outputs carry gateway URL, private endpoints and inventory" bash -c \
	"jq -e '(.gateway_url.value | startswith(\"https://\")) and (.gateway_password.sensitive) and (.redis_endpoints.value | all(startswith(\"10.\"))) and (.mongodb_endpoint.value | startswith(\"mongodb://10.\")) and (.worker_inventory.value | length >= 1)' '$work/outputs.json'"
check "envs/local: data servers have no public port but SSH/ICMP" bash -c \
	"api() { curl -fsS -H 'Authorization: Bearer $token' '$endpoint'\"\$1\"; }; fw=\$(api '/firewalls?name=aigw-local-internal' | jq '.firewalls[0]'); echo \"\$fw\" | jq -e '(.rules | map(select(.protocol != \"icmp\")) | all(.port == \"22\" and (.source_ips | index(\"0.0.0.0/0\") | not))) and (.applied_to | length == 7)'"

# What each worker would boot with, as the API received it: cloud-init runs
# the bootstrap, which installs python3-torch and the release's reference
# algorithms and registers them in MongoDB before it starts the worker.
worker_boot() { # FILE: a server's user_data
	PYTHONPATH=$ci_root/usr/lib/python3/dist-packages /usr/bin/python3 - "$1" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]).read())
files = {f["path"]: f["content"] for f in doc.get("write_files", [])}
boot = files.get("/usr/local/sbin/aigw-worker-bootstrap", "")
env = files.get("/etc/aigw/worker.env", "")
problems = []
if ["/usr/local/sbin/aigw-worker-bootstrap"] not in doc.get("runcmd", []):
    problems.append("runcmd does not run the bootstrap")
for want in ("releases/download/v", "/aigw-algorithms_linux_amd64.tar.gz", "python3-torch", "/opt/aigw/"):
    if want not in boot:
        problems.append("the bootstrap lacks " + want)
reg = boot.find("aigw-worker register /opt/aigw/algorithms")
start = boot.find("systemctl restart aigw-worker")
if reg < 0 or start < reg:
    problems.append("the bootstrap does not register the algorithms before it starts the worker")
for want in ("AIGW_ALGORITHMS_DIR=/opt/aigw/algorithms", "AIGW_BIN_DIR=/opt/aigw/bin", "AIGW_INTERPRETERS=/usr/bin/python3"):
    if want + "\n" not in env:
        problems.append("worker.env lacks " + want)
print("\n".join(problems) or "installs torch and the algorithms, registers them, then starts the worker")
sys.exit(1 if problems else 0)
PY
}
servers=$(api '/servers?per_page=50')
while IFS=' ' read -r id name; do
	api "/servers/$id/user_data" | jq -r .user_data >"$work/user_data_$name.yaml"
	check "envs/local: worker $name boots with the algorithms (user_data from the API)" worker_boot "$work/user_data_$name.yaml"
done < <(jq -r '.servers[] | select(.labels["aigw/role"] == "worker") | "\(.id) \(.name)"' <<<"$servers")
[[ -n $(jq -r '.servers[] | select(.labels["aigw/role"] == "worker") | .id' <<<"$servers") ]] ||
	check "envs/local: worker servers in the API" false
api_id=$(jq -r '[.servers[] | select(.labels["aigw/role"] != "worker")][0].id' <<<"$servers")
api "/servers/$api_id/user_data" | jq -r .user_data >"$work/user_data_other.yaml"
not_worker_boot() { ! worker_boot "$1"; }
check "the worker boot check rejects another server's cloud-init" not_worker_boot "$work/user_data_other.yaml"

mkdir -p "$work/cloud-init"
if jq -e '.cloud_init_documents.value | length > 0' "$work/outputs.json" >/dev/null 2>&1; then
	while IFS= read -r name; do
		jq -r --arg n "$name" '.cloud_init_documents.value[$n]' "$work/outputs.json" >"$work/cloud-init/$name.yaml"
		check "cloud-init schema: $name" cloud_init_schema "$work/cloud-init/$name.yaml"
	done < <(jq -r '.cloud_init_documents.value | keys[]' "$work/outputs.json")
else
	check "cloud-init documents in the outputs" false
fi

check "envs/local: terraform destroy" \
	terraform -chdir="$local_dir" destroy -auto-approve -input=false -no-color -state="$state"
check "envs/local: nothing left in the API after destroy" bash -c \
	"for c in servers networks firewalls ssh_keys placement_groups; do n=\$(curl -fsS -H 'Authorization: Bearer $token' '$endpoint/'\$c | jq \".\$c | length\"); echo \"\$c: \$n\"; [[ \$n == 0 ]] || exit 1; done"
check "aigw-hcloudfake saw no failed request" bash -c "! grep -E 'status=(4|5)[0-9][0-9]' '$logs/fake.log'"

finish
