//! Broker accounts and their ACLs, and the Mosquitto dynamic-security commands that manage them
//! (docs/security.md "Broker accounts").
//!
//! Owns three things as data: the ACL list of every kind of account (a device, a site's Hub,
//! the owner), the typed commands and responses of the dynamic security plugin
//! (`$CONTROL/dynamic-security/v1`), and the [`Batch`]es that create, rotate and revoke an
//! account. A shell publishes [`Batch::payload`] to [`CONTROL_TOPIC`] over an admin connection
//! and feeds what arrives on [`RESPONSE_TOPIC`] to [`Batch::check`].
//!
//! Never opens a connection, never draws a password (the shell brings one from OS randomness)
//! and never shows one: [`Secret`]'s `Debug` and `Display` print `***`.
//!
//! Mosquitto 2.0.11's dynsec ACLs have no `%c`/`%u` substitution, so every device gets its own
//! role with literal topics, and a site's role holds literal entries for each of its devices.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::protocol::mcp::topics::{self, DeviceId};
use crate::transport::link::topic_matches;

/// Where dynsec commands are published.
pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
/// Where dynsec answers them.
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";
/// The owner's account: the dynsec admin created at `mosquitto_ctrl dynsec init`, used by
/// `ctl` and `provision`.
pub const ADMIN_USERNAME: &str = "axon-admin";
/// The role that lets the owner's account use every Axon topic (dynsec's own `admin` role
/// only reaches `$CONTROL` and `$SYS` and receives, not sends, Axon's topics).
pub const OWNER_ROLE: &str = "axon-owner";
/// The server-name filter a Hub subscribes to when none is configured.
pub const DEFAULT_SERVER_NAME_FILTER: &str = "axon/#";

/// A password. Serialized as the plain string dynsec wants; never shown by `Debug`/`Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The password itself, for a CONNECT or the one line `provision` prints.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What an ACL entry governs (dynsec's `acltype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AclType {
    /// The client may publish to the topic.
    PublishClientSend,
    /// The client may be sent messages on the topic (checked per message, retained ones too).
    PublishClientReceive,
    /// The client may subscribe with a filter the entry covers (`+` in the entry covers `+`).
    SubscribePattern,
    /// The client may subscribe with exactly this filter.
    SubscribeLiteral,
    /// The client may unsubscribe (the default already allows it).
    UnsubscribePattern,
}

/// One ACL entry of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// What it governs.
    pub acltype: AclType,
    /// A topic filter (`+`, `#` allowed).
    pub topic: String,
    /// Higher is checked first; every Axon entry allows, so order does not matter.
    #[serde(default)]
    pub priority: i32,
    /// Allow or deny.
    pub allow: bool,
}

impl Acl {
    fn allow(acltype: AclType, topic: impl Into<String>) -> Acl {
        Acl {
            acltype,
            topic: topic.into(),
            priority: 0,
            allow: true,
        }
    }
}

/// The kinds the broker-wide default applies to when no role entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultAclType {
    /// Publishing.
    PublishClientSend,
    /// Being sent a message.
    PublishClientReceive,
    /// Subscribing.
    Subscribe,
    /// Unsubscribing.
    Unsubscribe,
}

/// One broker-wide default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultAcl {
    /// What it governs.
    pub acltype: DefaultAclType,
    /// Allow or deny.
    pub allow: bool,
}

/// A role held by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRef {
    /// The role.
    pub rolename: String,
    /// Higher is checked first.
    #[serde(default)]
    pub priority: i32,
}

/// A dynsec command (mosquitto.org/documentation/dynamic-security, 2.0.11's subset we use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum Command {
    /// Broker-wide defaults.
    #[serde(rename = "setDefaultACLAccess")]
    SetDefaultAclAccess {
        /// The defaults to set.
        acls: Vec<DefaultAcl>,
    },
    /// A new account. With `clientid` the account may only connect with that client id
    /// (another id gets CONNACK 0x87).
    #[serde(rename = "createClient")]
    CreateClient {
        /// The CONNECT username.
        username: String,
        /// The CONNECT password.
        password: Secret,
        /// The pinned client id, if any.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        clientid: Option<String>,
        /// Its roles.
        roles: Vec<RoleRef>,
    },
    /// A new password; a connected client of that account is disconnected (DISCONNECT 0x98).
    #[serde(rename = "setClientPassword")]
    SetClientPassword {
        /// The account.
        username: String,
        /// The new password.
        password: Secret,
    },
    /// Deletes an account; a connected client of it is disconnected (DISCONNECT 0x98).
    #[serde(rename = "deleteClient")]
    DeleteClient {
        /// The account.
        username: String,
    },
    /// Gives an account a role.
    #[serde(rename = "addClientRole")]
    AddClientRole {
        /// The account.
        username: String,
        /// The role.
        rolename: String,
        /// Higher is checked first.
        priority: i32,
    },
    /// A new role with its ACL.
    #[serde(rename = "createRole")]
    CreateRole {
        /// The role.
        rolename: String,
        /// Its entries.
        acls: Vec<Acl>,
    },
    /// Deletes a role.
    #[serde(rename = "deleteRole")]
    DeleteRole {
        /// The role.
        rolename: String,
    },
    /// Adds one entry to a role.
    #[serde(rename = "addRoleACL")]
    AddRoleAcl {
        /// The role.
        rolename: String,
        /// The entry.
        #[serde(flatten)]
        acl: Acl,
    },
    /// Removes one entry from a role.
    #[serde(rename = "removeRoleACL")]
    RemoveRoleAcl {
        /// The role.
        rolename: String,
        /// What the entry governs.
        acltype: AclType,
        /// Its topic.
        topic: String,
    },
}

impl Command {
    /// dynsec's name for it, as echoed in its response.
    pub fn name(&self) -> &'static str {
        match self {
            Command::SetDefaultAclAccess { .. } => "setDefaultACLAccess",
            Command::CreateClient { .. } => "createClient",
            Command::SetClientPassword { .. } => "setClientPassword",
            Command::DeleteClient { .. } => "deleteClient",
            Command::AddClientRole { .. } => "addClientRole",
            Command::CreateRole { .. } => "createRole",
            Command::DeleteRole { .. } => "deleteRole",
            Command::AddRoleAcl { .. } => "addRoleACL",
            Command::RemoveRoleAcl { .. } => "removeRoleACL",
        }
    }
}

/// One command on the wire, with the correlation data that pairs it with its response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The command.
    #[serde(flatten)]
    pub command: Command,
    /// `{batch id}/{index}`.
    #[serde(rename = "correlationData")]
    pub correlation_data: String,
}

/// A message to [`CONTROL_TOPIC`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    /// The commands, carried out in order; each is answered on its own.
    pub commands: Vec<Request>,
}

/// One answer from [`RESPONSE_TOPIC`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The command's name.
    pub command: String,
    /// Why it failed; absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a `get`/`list` command returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// The request's correlation data, echoed.
    #[serde(
        rename = "correlationData",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub correlation_data: Option<String>,
}

/// A message from [`RESPONSE_TOPIC`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Responses {
    /// One per command, in order.
    pub responses: Vec<Response>,
}

/// Why managing accounts failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerAdminError {
    /// A site name breaks the rules.
    #[error(
        "invalid site {0:?}: use 1-32 characters a-z, 0-9 and '-', starting with a letter or digit"
    )]
    Site(String),
    /// A server-name filter that is not a topic filter.
    #[error("invalid server-name filter {0:?}: use an MQTT topic filter over server names, e.g. axon/# or demo/+/#")]
    ServerNameFilter(String),
    /// A device id that would collide with another account's username.
    #[error("device id {0:?} is reserved for the broker's own accounts (hub-*, axon-admin): choose another id")]
    ReservedDeviceId(String),
    /// The broker refused a command.
    #[error("the broker refused {command}: {error} (check that the admin account is axon-admin and the dynamic security plugin is loaded)")]
    Refused {
        /// The command.
        command: String,
        /// dynsec's reason.
        error: String,
    },
    /// The response did not parse or did not answer every command.
    #[error("unreadable answer from the broker's dynamic security plugin: {0}")]
    BadResponse(String),
}

/// Command results that leave the account as asked, so a batch can run again (idempotent).
const ALREADY: &[&str] = &[
    "Client already exists",
    "Role already exists",
    "ACL with this topic already exists",
];
const GONE: &[&str] = &["Client not found", "Role not found", "ACL not found"];

/// Commands sent together, each with the errors that still mean "done".
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    id: String,
    steps: Vec<(Command, &'static [&'static str])>,
}

impl Batch {
    /// An empty batch; `id` (unique per admin connection's request, e.g. random hex) tells its
    /// responses apart from other admins' on the shared response topic.
    pub fn new(id: impl Into<String>) -> Batch {
        Batch {
            id: id.into(),
            steps: Vec::new(),
        }
    }

    fn push(&mut self, command: Command, tolerate: &'static [&'static str]) {
        self.steps.push((command, tolerate));
    }

    /// Lets `site`'s Hub subscribe to the presence of a paired device named `server_name`
    /// outside its filters (`$mcp-server/presence/+/{server_name}`; receiving is already the
    /// device's own entry, [`site_device_acls`]). `remove` takes the entry away again.
    pub fn site_server_name(
        &mut self,
        site: &str,
        server_name: &str,
        remove: bool,
    ) -> Result<(), BrokerAdminError> {
        check_site(site)?;
        topics::check_server_name(server_name)
            .map_err(|_| BrokerAdminError::ServerNameFilter(server_name.into()))?;
        let topic = format!("$mcp-server/presence/+/{server_name}");
        if remove {
            self.push(
                Command::RemoveRoleAcl {
                    rolename: site_role(site),
                    acltype: AclType::SubscribePattern,
                    topic,
                },
                GONE,
            );
        } else {
            self.push(
                Command::AddRoleAcl {
                    rolename: site_role(site),
                    acl: Acl::allow(AclType::SubscribePattern, topic),
                },
                ALREADY,
            );
        }
        Ok(())
    }

    /// The commands, in order.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.steps.iter().map(|(c, _)| c)
    }

    /// The typed request.
    pub fn requests(&self) -> Requests {
        Requests {
            commands: self
                .steps
                .iter()
                .enumerate()
                .map(|(i, (c, _))| Request {
                    command: c.clone(),
                    correlation_data: format!("{}/{i}", self.id),
                })
                .collect(),
        }
    }

    /// The bytes to publish to [`CONTROL_TOPIC`] (contains passwords: never log it).
    pub fn payload(&self) -> Vec<u8> {
        // Serializing plain structs of strings cannot fail.
        serde_json::to_vec(&self.requests()).unwrap_or_default()
    }

    /// Reads a message from [`RESPONSE_TOPIC`]: `Ok(None)` if it answers another batch,
    /// `Ok(Some(()))` if every command succeeded (or found the account already as asked).
    pub fn check(&self, payload: &[u8]) -> Result<Option<()>, BrokerAdminError> {
        let r: Responses = serde_json::from_slice(payload)
            .map_err(|e| BrokerAdminError::BadResponse(e.to_string()))?;
        let prefix = format!("{}/", self.id);
        let ours: Vec<&Response> = r
            .responses
            .iter()
            .filter(|r| {
                r.correlation_data
                    .as_deref()
                    .is_some_and(|c| c.starts_with(&prefix))
            })
            .collect();
        if ours.is_empty() {
            return Ok(None);
        }
        for (i, (command, tolerate)) in self.steps.iter().enumerate() {
            let want = format!("{prefix}{i}");
            let resp = ours
                .iter()
                .find(|r| r.correlation_data.as_deref() == Some(&want))
                .ok_or_else(|| {
                    BrokerAdminError::BadResponse(format!("no answer to {}", command.name()))
                })?;
            if let Some(e) = &resp.error {
                if !tolerate.contains(&e.as_str()) {
                    return Err(BrokerAdminError::Refused {
                        command: command.name().into(),
                        error: e.clone(),
                    });
                }
            }
        }
        Ok(Some(()))
    }
}

/// Checks a site name (same rules as a device id: it becomes part of usernames and roles).
pub fn check_site(site: &str) -> Result<(), BrokerAdminError> {
    DeviceId::new(site)
        .map(|_| ())
        .map_err(|_| BrokerAdminError::Site(site.to_string()))
}

/// The role that holds device `d`'s ACL.
pub fn device_role(d: &DeviceId) -> String {
    format!("device-{d}")
}

/// The role of site `site`'s Hub: its base ACL plus the entries of each of its devices.
pub fn site_role(site: &str) -> String {
    format!("site-{site}")
}

/// The username of site `site`'s Hub.
pub fn hub_username(site: &str) -> String {
    format!("hub-{site}")
}

/// Device `d`'s ACL (its username and pinned client id are `d`).
pub fn device_acls(d: &DeviceId) -> Vec<Acl> {
    use AclType::*;
    let mut v = Vec::new();
    let mut both = |topic: String, kinds: &[AclType]| {
        for k in kinds {
            v.push(Acl::allow(*k, topic.clone()));
        }
    };
    // Requests and initialize arrive on the control topic.
    both(
        format!("$mcp-server/{d}/#"),
        &[SubscribePattern, PublishClientReceive],
    );
    // Its own presence (online, tombstone, will) and capability notices.
    both(format!("$mcp-server/presence/{d}/#"), &[PublishClientSend]);
    both(
        format!("$mcp-server/capability/{d}/#"),
        &[PublishClientSend],
    );
    // RPC with any client.
    both(
        format!("$mcp-rpc/+/{d}/#"),
        &[PublishClientSend, SubscribePattern, PublishClientReceive],
    );
    // Clients' presence and capability (their `disconnected` notices).
    both(
        "$mcp-client/presence/#".into(),
        &[SubscribePattern, PublishClientReceive],
    );
    both(
        "$mcp-client/capability/#".into(),
        &[SubscribePattern, PublishClientReceive],
    );
    for t in [
        format!("axon/telemetry/{d}"),
        format!("axon/telemetry/{d}/latest"),
        format!("axon/events/{d}"),
        format!("$webrtc/{d}/multimedia_proxy"),
        format!("$message/{d}/multimedia_proxy"),
    ] {
        both(t, &[PublishClientSend]);
    }
    for t in [format!("$webrtc/{d}"), format!("$message/{d}")] {
        both(t, &[SubscribePattern, PublishClientReceive]);
    }
    v
}

/// What site role `site-*` holds for one of its devices: the Hub may receive the device's
/// presence, capability, RPC, telemetry and events, and send to its control and RPC topics.
pub fn site_device_acls(d: &DeviceId) -> Vec<Acl> {
    use AclType::*;
    let mut v = Vec::new();
    let mut add = |topic: String, kinds: &[AclType]| {
        for k in kinds {
            v.push(Acl::allow(*k, topic.clone()));
        }
    };
    add(
        format!("$mcp-server/presence/{d}/#"),
        &[PublishClientReceive],
    );
    add(
        format!("$mcp-server/capability/{d}/#"),
        &[SubscribePattern, PublishClientReceive],
    );
    add(format!("$mcp-server/{d}/#"), &[PublishClientSend]);
    add(
        format!("$mcp-rpc/+/{d}/#"),
        &[PublishClientSend, SubscribePattern, PublishClientReceive],
    );
    for t in [
        format!("axon/telemetry/{d}"),
        format!("axon/telemetry/{d}/latest"),
        format!("axon/events/{d}"),
    ] {
        add(t, &[PublishClientReceive]);
    }
    v
}

/// A site role's own entries: the wildcard subscriptions the Hub makes (what arrives through
/// them is still checked per device by `publishClientReceive`), its own presence, and account
/// management (the pairing feature has the Hub create device accounts).
///
/// `$CONTROL/dynamic-security/#` lets the Hub change any account, its own included: whoever
/// holds the Hub's password can grant itself more (docs/security.md).
pub fn site_base_acls(server_name_filters: &[String]) -> Vec<Acl> {
    use AclType::*;
    let mut v: Vec<Acl> = server_name_filters
        .iter()
        .map(|f| Acl::allow(SubscribePattern, format!("$mcp-server/presence/+/{f}")))
        .collect();
    for f in [
        "axon/telemetry/+",
        "axon/telemetry/+/latest",
        "axon/events/+",
    ] {
        v.push(Acl::allow(SubscribePattern, f));
    }
    // The client id is fresh per connection (`axon-hub.{site}.{hex}`), so no literal topic
    // can name it: any client presence.
    v.push(Acl::allow(PublishClientSend, "$mcp-client/presence/#"));
    v.push(Acl::allow(PublishClientSend, "$CONTROL/dynamic-security/#"));
    for k in [SubscribePattern, PublishClientReceive] {
        v.push(Acl::allow(k, RESPONSE_TOPIC));
    }
    v
}

/// The owner's ACL: every Axon topic, both ways. `#` does not match topics starting with `$`,
/// so the `$` trees are named one by one.
pub fn owner_acls() -> Vec<Acl> {
    use AclType::*;
    let mut v = Vec::new();
    for t in [
        "#",
        "$mcp-server/#",
        "$mcp-client/#",
        "$mcp-rpc/#",
        "$webrtc/#",
        "$message/#",
    ] {
        for k in [PublishClientSend, SubscribePattern, PublishClientReceive] {
            v.push(Acl::allow(k, t));
        }
    }
    v
}

/// Broker-wide defaults: nothing without an entry. dynsec's own default allows receiving,
/// which would let a Hub's wildcard subscription see every site.
pub fn default_access() -> Vec<DefaultAcl> {
    use DefaultAclType::*;
    vec![
        DefaultAcl {
            acltype: PublishClientSend,
            allow: false,
        },
        DefaultAcl {
            acltype: PublishClientReceive,
            allow: false,
        },
        DefaultAcl {
            acltype: Subscribe,
            allow: false,
        },
        DefaultAcl {
            acltype: Unsubscribe,
            allow: true,
        },
    ]
}

fn role(rolename: &str) -> RoleRef {
    RoleRef {
        rolename: rolename.into(),
        priority: 0,
    }
}

/// Adds the broker-wide defaults to `b` (idempotent; 2.0.11 saves them, measured).
pub fn add_defaults(b: &mut Batch) {
    b.push(
        Command::SetDefaultAclAccess {
            acls: default_access(),
        },
        &[],
    );
}

/// The dynsec file written by `mosquitto_ctrl dynsec init FILE axon-admin PASSWORD`, made
/// Axon's: the defaults of [`default_access`], and role [`OWNER_ROLE`] with [`owner_acls`]
/// given to the admin account. Done on the file before the broker starts because in 2.0.11
/// changing a client's roles, or the ACL of a role it holds, disconnects it (DISCONNECT 0x98,
/// measured): the admin cannot give itself a role over its own connection and read the answer.
pub fn prepare_config(init: &str) -> Result<String, BrokerAdminError> {
    let bad = |e: String| BrokerAdminError::BadResponse(format!("dynsec file: {e}"));
    let mut v: serde_json::Value = serde_json::from_str(init).map_err(|e| bad(e.to_string()))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    let mut defaults = serde_json::Map::new();
    for d in default_access() {
        let key = serde_json::to_value(d.acltype)
            .ok()
            .and_then(|k| k.as_str().map(str::to_string))
            .unwrap_or_default();
        defaults.insert(key, d.allow.into());
    }
    obj.insert("defaultACLAccess".into(), defaults.into());
    let roles = obj
        .entry("roles")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| bad("roles is not an array".into()))?;
    roles.retain(|r| r["rolename"] != OWNER_ROLE);
    roles.push(serde_json::json!({"rolename": OWNER_ROLE, "acls": owner_acls()}));
    let clients = obj
        .get_mut("clients")
        .and_then(|c| c.as_array_mut())
        .ok_or_else(|| bad("no clients".into()))?;
    let admin = clients
        .iter_mut()
        .find(|c| c["username"] == ADMIN_USERNAME)
        .ok_or_else(|| {
            bad(format!(
                "no client {ADMIN_USERNAME}: init it with that username"
            ))
        })?;
    let list = admin
        .as_object_mut()
        .ok_or_else(|| bad("client is not an object".into()))?
        .entry("roles")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| bad("client roles is not an array".into()))?;
    if !list.iter().any(|r| r["rolename"] == OWNER_ROLE) {
        list.push(serde_json::json!({ "rolename": OWNER_ROLE }));
    }
    serde_json::to_string_pretty(&v).map_err(|e| bad(e.to_string()))
}

fn add_site_role(b: &mut Batch, site: &str, filters: &[String]) {
    b.push(
        Command::CreateRole {
            rolename: site_role(site),
            acls: site_base_acls(filters),
        },
        ALREADY,
    );
}

/// Creates device `d`'s account with `password`, or gives an existing one the new password
/// (which disconnects it), and adds it to `site`'s role when given. Adding it to the role
/// disconnects the site's Hub once (2.0.11 kicks every holder of a changed role, measured);
/// the Hub reconnects after its backoff and rediscovers.
pub fn provision_device(
    batch_id: impl Into<String>,
    d: &DeviceId,
    password: Secret,
    site: Option<&str>,
) -> Result<Batch, BrokerAdminError> {
    if d.as_str().starts_with("hub-") || d.as_str() == ADMIN_USERNAME {
        return Err(BrokerAdminError::ReservedDeviceId(d.to_string()));
    }
    if let Some(s) = site {
        check_site(s)?;
    }
    let mut b = Batch::new(batch_id);
    add_defaults(&mut b);
    b.push(
        Command::CreateRole {
            rolename: device_role(d),
            acls: device_acls(d),
        },
        ALREADY,
    );
    b.push(
        Command::CreateClient {
            username: d.to_string(),
            password: password.clone(),
            clientid: Some(d.to_string()),
            roles: vec![role(&device_role(d))],
        },
        ALREADY,
    );
    b.push(
        Command::SetClientPassword {
            username: d.to_string(),
            password,
        },
        &[],
    );
    if let Some(s) = site {
        add_site_role(&mut b, s, &[DEFAULT_SERVER_NAME_FILTER.to_string()]);
        for acl in site_device_acls(d) {
            b.push(
                Command::AddRoleAcl {
                    rolename: site_role(s),
                    acl,
                },
                ALREADY,
            );
        }
    }
    Ok(b)
}

/// Removes device `d` from `site`'s role and deletes its account and role; dynsec disconnects
/// a connected client of a deleted account (DISCONNECT 0x98, measured).
pub fn revoke_device(
    batch_id: impl Into<String>,
    d: &DeviceId,
    site: Option<&str>,
) -> Result<Batch, BrokerAdminError> {
    let mut b = Batch::new(batch_id);
    if let Some(s) = site {
        check_site(s)?;
        for acl in site_device_acls(d) {
            b.push(
                Command::RemoveRoleAcl {
                    rolename: site_role(s),
                    acltype: acl.acltype,
                    topic: acl.topic,
                },
                GONE,
            );
        }
    }
    b.push(
        Command::DeleteClient {
            username: d.to_string(),
        },
        GONE,
    );
    b.push(
        Command::DeleteRole {
            rolename: device_role(d),
        },
        GONE,
    );
    Ok(b)
}

/// Creates site `site`'s Hub account (`hub-{site}`, client id not pinned) with `password`, or
/// rotates it. `server_name_filters` are the filters its presence subscription uses
/// (`axon/#` when empty); they are added to the site role, which keeps earlier ones.
pub fn provision_hub(
    batch_id: impl Into<String>,
    site: &str,
    password: Secret,
    server_name_filters: &[String],
) -> Result<Batch, BrokerAdminError> {
    check_site(site)?;
    for f in server_name_filters {
        topics::check_server_name_filter(f)
            .map_err(|_| BrokerAdminError::ServerNameFilter(f.clone()))?;
    }
    let filters = if server_name_filters.is_empty() {
        vec![DEFAULT_SERVER_NAME_FILTER.to_string()]
    } else {
        server_name_filters.to_vec()
    };
    let mut b = Batch::new(batch_id);
    add_defaults(&mut b);
    add_site_role(&mut b, site, &filters);
    // The role may already exist (a device of the site was provisioned first, with the default
    // filter): its own entries are added one by one, so this Hub's filters are in it.
    for acl in site_base_acls(&filters) {
        b.push(
            Command::AddRoleAcl {
                rolename: site_role(site),
                acl,
            },
            ALREADY,
        );
    }
    b.push(
        Command::CreateClient {
            username: hub_username(site),
            password: password.clone(),
            clientid: None,
            roles: vec![role(&site_role(site))],
        },
        ALREADY,
    );
    b.push(
        Command::SetClientPassword {
            username: hub_username(site),
            password,
        },
        &[],
    );
    Ok(b)
}

/// The username (and pinned client id) of the media endpoint (`axon-media`).
pub const MEDIA_USERNAME: &str = "axon-media";
/// The media endpoint's role.
pub const MEDIA_ROLE: &str = "axon-media";

/// The media endpoint's ACL (docs/protocol.md §9): it reads every device's signalling and text
/// (`…/multimedia_proxy`) and writes to every device's `$webrtc/{id}` and `$message/{id}`. It
/// cannot write a proxy topic (so it cannot offer as a device), nor touch MCP or telemetry.
pub fn media_acls() -> Vec<Acl> {
    use AclType::*;
    let mut v = Vec::new();
    for f in crate::media::signalling::ENDPOINT_FILTERS {
        v.push(Acl::allow(SubscribePattern, f));
        v.push(Acl::allow(PublishClientReceive, f));
    }
    for t in ["$webrtc/+", "$message/+"] {
        v.push(Acl::allow(PublishClientSend, t));
    }
    v
}

/// Creates the media endpoint's account ([`MEDIA_USERNAME`], client id pinned) with `password`,
/// or rotates it.
pub fn provision_media(batch_id: impl Into<String>, password: Secret) -> Batch {
    let mut b = Batch::new(batch_id);
    add_defaults(&mut b);
    b.push(
        Command::CreateRole {
            rolename: MEDIA_ROLE.into(),
            acls: media_acls(),
        },
        ALREADY,
    );
    b.push(
        Command::CreateClient {
            username: MEDIA_USERNAME.into(),
            password: password.clone(),
            clientid: Some(MEDIA_USERNAME.into()),
            roles: vec![role(MEDIA_ROLE)],
        },
        ALREADY,
    );
    b.push(
        Command::SetClientPassword {
            username: MEDIA_USERNAME.into(),
            password,
        },
        &[],
    );
    b
}

/// Whether the covering ACL filter `acl` lets a client subscribe with `filter`, the way
/// dynsec's `subscribePattern` decides: a `+` in the entry covers any one level (a `+` too),
/// a `#` covers the rest; a wildcard in the subscription is only covered by a wildcard.
pub fn filter_covers(acl: &str, filter: &str) -> bool {
    if filter.starts_with('$') && (acl.starts_with('+') || acl.starts_with('#')) {
        return false;
    }
    let mut a = acl.split('/');
    let mut f = filter.split('/');
    loop {
        match (a.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(x), Some(y)) if x == y => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether `acls` allow `kind` on `topic` (a topic for the publish kinds, a filter for the
/// subscribe kinds): the check dynsec makes, for unit tests and docs.
pub fn allows(acls: &[Acl], kind: AclType, topic: &str) -> bool {
    acls.iter().any(|a| {
        a.allow
            && a.acltype == kind
            && match kind {
                AclType::SubscribePattern => filter_covers(&a.topic, topic),
                AclType::SubscribeLiteral => a.topic == topic,
                _ => topic_matches(&a.topic, topic),
            }
    })
}

#[cfg(test)]
mod tests;
