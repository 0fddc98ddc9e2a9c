#!/usr/bin/env bash
# Pairing and revocation of Axon devices on EMQX 5.8, through EMQX's HTTP API (/api/v5).
#
# What pairing does on EMQX (the Mosquitto setup does the same through the dynamic-security
# topic): it creates the device's account in the built-in database authenticator and adds
# that device's topics to its site's Hub in the built-in database authorizer. The device's
# own topics need no per-device rule: acl.conf grants them with ${username}. Revocation
# deletes the account, removes the Hub's rules for the device, kicks the device off, and
# clears its retained messages.
#
# Written from EMQX's docs and its v5.8.9 sources (cited at each request below), and tested
# against a recording stand-in for the API (test_pair_device.py), NOT against a live EMQX.
# config/emqx/README.md lists what to verify on a first deployment.
#
# Secrets: the API key and secret come from the environment and reach curl through a config
# file descriptor, never through its argument list; passwords reach jq and curl through the
# environment and stdin. Nothing secret is printed. A generated password is written to a
# credentials file readable only by you, and the script prints its path.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage:
  pair-device.sh pair DEVICE_ID SITE [--rotate]   create the device's account; its Hub may reach it
  pair-device.sh revoke DEVICE_ID SITE            delete the account, the Hub's rules, kick, clear retained
  pair-device.sh hub SITE [--rotate]              create (or rotate) the account hub-SITE of a site's Hub
  pair-device.sh admin [--rotate]                 create (or rotate) the owner's account axon-admin
  pair-device.sh hub-rules DEVICE_ID              print the Hub's rules for one device (JSON; no API call)

Environment:
  EMQX_API_KEY, EMQX_API_SECRET  an EMQX API key (Dashboard: System > API Key, or api_key.bootstrap_file)
  EMQX_API_URL                   default http://127.0.0.1:18083/api/v5
  AXON_CREDENTIALS_DIR           where new passwords are written (mode 600), default ~/.axon/emqx
  AXON_DEVICE_PASSWORD           use this password instead of generating one (pair, hub, admin)

--rotate replaces the password of an existing account and kicks its client, so that it must
reconnect with the new password (EMQX does not re-authenticate a connected client).
EOF
}

die() {
    echo "pair-device.sh: $*" >&2
    exit 1
}

API_URL="${EMQX_API_URL:-http://127.0.0.1:18083/api/v5}"
API_URL="${API_URL%/}"
CRED_DIR="${AXON_CREDENTIALS_DIR:-$HOME/.axon/emqx}"
# The authenticator id "password_based:built_in_database", URL-encoded
# (access-control/authn/authn.md, "Authenticator ID").
AUTHN_ID="password_based%3Abuilt_in_database"
ADMIN_USER="axon-admin"

# A device id is docs/protocol.md §2.1's: ^[a-z0-9][a-z0-9-]{0,31}$, not `presence` or
# `capability`. The names of the other accounts are refused too, so that no device can hold
# the Hub's or the owner's rules.
check_device_id() {
    local id="$1"
    [[ "$id" =~ ^[a-z0-9][a-z0-9-]{0,31}$ ]] ||
        die "device id '$id' is not valid: use 1-32 of a-z, 0-9 and '-', starting with a letter or digit"
    case "$id" in
    presence | capability) die "device id '$id' is reserved: it would read as \$mcp-server/$id/... topics" ;;
    hub-*) die "device id '$id' is reserved: 'hub-' names are the sites' Hub accounts" ;;
    "$ADMIN_USER") die "device id '$id' is reserved: it is the owner's account" ;;
    esac
}

check_site() {
    [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,31}$ ]] ||
        die "site '$1' is not valid: use 1-32 of a-z, 0-9 and '-', starting with a letter or digit"
}

# The rules a site's Hub needs for one of its devices (built-in database rule objects:
# permission, action, topic; access-control/authz/mnesia.md, "Create with API").
#   - publish `initialize` on the device's control topic
#   - subscribe to its capability topic (list_changed, resources/updated)
#   - publish and subscribe on its RPC topics; the Hub's MCP client id is `+` here because
#     it is not the Hub's MQTT client id (README.md, "Why client ids are pinned")
#   - subscribe to its presence, telemetry and events: what a Hub that subscribes per
#     device will use on a broker shared by several sites (README.md, "Site isolation")
hub_rules_for() {
    D="$1" jq -n '[
      {permission: "allow", action: "publish",   topic: "$mcp-server/\(env.D)/#"},
      {permission: "allow", action: "subscribe", topic: "$mcp-server/capability/\(env.D)/#"},
      {permission: "allow", action: "all",       topic: "$mcp-rpc/+/\(env.D)/#"},
      {permission: "allow", action: "subscribe", topic: "$mcp-server/presence/\(env.D)/#"},
      {permission: "allow", action: "subscribe", topic: "axon/telemetry/\(env.D)/#"},
      {permission: "allow", action: "subscribe", topic: "axon/events/\(env.D)"}
    ]'
}

urlencode() {
    S="$1" jq -rn 'env.S | @uri'
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# api METHOD PATH [BODY]: sets STATUS and leaves the response body in $TMP/body.
# Basic authentication with the API key as user and the secret as password
# (admin/api.md, "Authentication"). The credentials go to curl as a config file on a file
# descriptor, so they are not in its argument list (`ps` shows arguments to everyone).
api() {
    local method="$1" path="$2" body="${3-}"
    [[ -n "${EMQX_API_KEY-}" && -n "${EMQX_API_SECRET-}" ]] ||
        die "set EMQX_API_KEY and EMQX_API_SECRET to an EMQX API key (Dashboard: System > API Key)"
    local cred="$EMQX_API_KEY:$EMQX_API_SECRET"
    cred="${cred//\\/\\\\}"
    cred="${cred//\"/\\\"}"
    : >"$TMP/body"
    STATUS="$(curl --silent --show-error --config <(printf 'user = "%s"\n' "$cred") \
        --request "$method" --header 'Content-Type: application/json' \
        --output "$TMP/body" --write-out '%{http_code}' \
        ${body:+--data-binary @-} "$API_URL$path" <<<"$body")" ||
        die "cannot reach EMQX's API at $API_URL ($method $path): is EMQX_API_URL right?"
    if [[ "$STATUS" == 401 ]]; then
        die "EMQX refused the API key (401): check EMQX_API_KEY and EMQX_API_SECRET"
    fi
}

fail_api() {
    local what="$1"
    die "$what: EMQX answered $STATUS: $(jq -r '.message // .' "$TMP/body" 2>/dev/null || cat "$TMP/body")"
}

new_password() {
    if [[ -n "${AXON_DEVICE_PASSWORD-}" ]]; then
        printf '%s' "$AXON_DEVICE_PASSWORD"
    else
        # 24 random bytes, base64url: 32 characters.
        head -c 24 /dev/urandom | base64 | tr '+/' '-_'
    fi
}

# save_credentials USERNAME (password in $PASSWORD): a 0600 JSON file; prints its path.
save_credentials() {
    local user="$1" file
    mkdir -p "$CRED_DIR"
    chmod 700 "$CRED_DIR"
    file="$CRED_DIR/$user.json"
    (
        umask 077
        U="$user" P="$PASSWORD" jq -n '{username: env.U, password: env.P}' >"$file.tmp"
    )
    mv "$file.tmp" "$file"
    echo "credentials for $user: $file (mode 600; hand them to the client, then delete the file)"
}

# ensure_account USERNAME ROTATE: create the account, or with ROTATE=1 replace its password
# and kick its client. Built-in database users: POST /authentication/{id}/users with
# {"user_id", "password", "is_superuser"} answers 201, or 409 when the user exists;
# PUT /authentication/{id}/users/{user_id} with {"password"} replaces the password
# (access-control/authn/user_management.md; request shapes from EMQX v5.8.9
# apps/emqx_auth/src/emqx_authn/emqx_authn_api.erl).
ensure_account() {
    local user="$1" rotate="$2" body
    PASSWORD="$(new_password)"
    body="$(U="$user" P="$PASSWORD" jq -cn '{user_id: env.U, password: env.P, is_superuser: false}')"
    api POST "/authentication/$AUTHN_ID/users" "$body"
    case "$STATUS" in
    201) echo "created account $user" ;;
    409)
        [[ "$rotate" == 1 ]] ||
            die "account $user already exists: pass --rotate to replace its password (or revoke it first)"
        body="$(P="$PASSWORD" jq -cn '{password: env.P}')"
        api PUT "/authentication/$AUTHN_ID/users/$(urlencode "$user")" "$body"
        [[ "$STATUS" == 200 ]] || fail_api "replacing the password of $user"
        echo "replaced the password of $user"
        kick "$user"
        ;;
    404) die "EMQX has no built-in database authenticator (404): load config/emqx/emqx.conf's authentication block" ;;
    *) fail_api "creating account $user" ;;
    esac
    if [[ -z "${AXON_DEVICE_PASSWORD-}" ]]; then
        save_credentials "$user"
    fi
}

# kick CLIENT_ID: DELETE /clients/{clientid} (EMQX v5.8.9
# apps/emqx_management/src/emqx_mgmt_api_clients.erl: 204 kicked, 404 not connected; the
# CLI twin is `emqx ctl clients kick`, admin/cli.md). An MQTT 5 client gets DISCONNECT 0x98
# and its will is published.
kick() {
    api DELETE "/clients/$(urlencode "$1")"
    case "$STATUS" in
    204) echo "disconnected client $1" ;;
    404) echo "client $1 was not connected" ;;
    *) fail_api "kicking client $1" ;;
    esac
}

# Forget what EMQX cached of the Hub's earlier checks (allowed or denied, for cache.ttl),
# so that a new pairing or a revocation applies at once: DELETE
# /clients/{clientid}/authorization/cache (same source file as kick). The Hub's client id
# is its username, hub-SITE (emqx.conf pins it).
clear_hub_cache() {
    api DELETE "/clients/$(urlencode "$1")/authorization/cache"
    case "$STATUS" in
    204 | 404) ;;
    *) fail_api "clearing the authorization cache of $1" ;;
    esac
}

# update_hub_rules SITE DEVICE add|remove: read the Hub's rule list, drop the device's
# rules, add them back for `add`, write the list. Built-in database rules per username:
# GET, PUT (replaces the whole list) on
# /authorization/sources/built_in_database/rules/users/{username} (docs/upgrade-from-v4.md
# names /authorization/sources/built_in_database/rules/{clients,users}; shapes from EMQX
# v5.8.9 apps/emqx_auth_mnesia/src/emqx_authz_api_mnesia.erl. The example path in
# access-control/authz/mnesia.md, .../built_in_database/clientid, is not in that source).
# Read-modify-write: two pairings for one site at the same moment can lose one; run them
# one at a time.
update_hub_rules() {
    local site="$1" device="$2" op="$3" hub="hub-$1" current new
    api GET "/authorization/sources/built_in_database/rules/users/$(urlencode "$hub")"
    case "$STATUS" in
    200) current="$(jq -c '.rules' "$TMP/body")" ;;
    404) current='[]' ;;
    *) fail_api "reading the rules of $hub" ;;
    esac
    new="$(hub_rules_for "$device")"
    current="$(CUR="$current" NEW="$new" jq -cn \
        '(env.NEW | fromjson | map(.topic)) as $mine
         | env.CUR | fromjson | map(select(.topic as $t | ($mine | index($t)) == null))')"
    if [[ "$op" == add ]]; then
        current="$(CUR="$current" NEW="$new" jq -cn '(env.CUR | fromjson) + (env.NEW | fromjson)')"
    fi
    api PUT "/authorization/sources/built_in_database/rules/users/$(urlencode "$hub")" \
        "$(H="$hub" R="$current" jq -cn '{username: env.H, rules: (env.R | fromjson)}')"
    case "$STATUS" in
    204) echo "$hub: $(jq length <<<"$current") rules ($op $device)" ;;
    400) fail_api "writing the rules of $hub (over authorization.sources max_rules? 6 per device)" ;;
    *) fail_api "writing the rules of $hub" ;;
    esac
    clear_hub_cache "$hub"
}

# clear_retained FILTER: list the retained messages under a filter and delete each
# (GET /mqtt/retainer/messages?topic=FILTER, DELETE /mqtt/retainer/message/{topic}; the
# `topic` query is in docs changes/changes-ce-v5.md, the paths in EMQX v5.8.9
# apps/emqx_retainer/src/emqx_retainer_api.erl).
clear_retained() {
    local filter="$1" topic
    api GET "/mqtt/retainer/messages?topic=$(urlencode "$filter")&limit=1000"
    [[ "$STATUS" == 200 ]] || fail_api "listing retained messages under $filter"
    jq -r '.data[].topic' "$TMP/body" >"$TMP/topics"
    while IFS= read -r topic; do
        api DELETE "/mqtt/retainer/message/$(urlencode "$topic")"
        case "$STATUS" in
        204) echo "cleared retained $topic" ;;
        404) ;;
        *) fail_api "clearing retained $topic" ;;
        esac
    done <"$TMP/topics"
}

rotate_flag() {
    case "${1-}" in
    "") echo 0 ;;
    --rotate) echo 1 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
}

cmd="${1-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
pair)
    [[ $# -ge 2 ]] || die "pair needs DEVICE_ID and SITE (see --help)"
    check_device_id "$1"
    check_site "$2"
    rotate="$(rotate_flag "${3-}")"
    api GET "/authentication/$AUTHN_ID/users/$(urlencode "hub-$2")"
    [[ "$STATUS" == 200 ]] ||
        echo "note: site $2 has no Hub account yet (pair-device.sh hub $2); its rules are written anyway"
    ensure_account "$1" "$rotate"
    update_hub_rules "$2" "$1" add
    ;;
revoke)
    [[ $# -eq 2 ]] || die "revoke needs DEVICE_ID and SITE (see --help)"
    check_device_id "$1"
    check_site "$2"
    # DELETE /authentication/{id}/users/{user_id}: 204, or 404 without such a user.
    api DELETE "/authentication/$AUTHN_ID/users/$(urlencode "$1")"
    case "$STATUS" in
    204) echo "deleted account $1" ;;
    404) echo "account $1 did not exist" ;;
    *) fail_api "deleting account $1" ;;
    esac
    update_hub_rules "$2" "$1" remove
    # The kick publishes the device's will: its empty retained presence, which the file's
    # device rules still allow, so the Hub sees it go offline.
    kick "$1"
    sleep 1
    clear_retained "\$mcp-server/presence/$1/#"
    clear_retained "axon/telemetry/$1/#"
    rm -f "$CRED_DIR/$1.json"
    ;;
hub)
    [[ $# -ge 1 ]] || die "hub needs SITE (see --help)"
    check_site "$1"
    ensure_account "hub-$1" "$(rotate_flag "${2-}")"
    ;;
admin)
    ensure_account "$ADMIN_USER" "$(rotate_flag "${1-}")"
    ;;
hub-rules)
    [[ $# -eq 1 ]] || die "hub-rules needs DEVICE_ID (see --help)"
    check_device_id "$1"
    hub_rules_for "$1"
    ;;
-h | --help | help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
