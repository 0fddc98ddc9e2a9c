//! Who may use which part of the worker's HTTP surface.
//!
//! Owns the one table from a [`Principal`] (what the presented credential proved) and an
//! [`Action`] (what the request asks for) to an [`Access`], with the refusal's wording, and
//! which person a principal speaks for. It never reads a header or a cookie and never looks a
//! credential up: the shell does, and hands over the principal it found.

use crate::protocol::jsonrpc::{code, ErrorObject};

/// Who is asking, as proved by a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The owner token, or a session signed in with it.
    Owner,
    /// A person the owner gave a token to (or a session signed in with it).
    Person(String),
    /// A paired device, with its own credential.
    Device(String),
    /// The media endpoint (`axon-media`, `AXON_MEDIA_TOKEN`): it opens voice sessions for the
    /// devices that call it over WebRTC, each one speaking for the calling device only.
    MediaEndpoint,
    /// A product site's widget: the publishable widget key from a listed origin.
    Widget {
        /// The page's origin.
        origin: String,
    },
    /// No credential.
    Stranger,
    /// A credential that is not valid: mistyped, revoked, expired, or a widget key from an
    /// origin that is not listed.
    Invalid(&'static str),
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `GET /healthz`: everyone; only the owner sees the details.
    Health,
    /// Signing in or out (`/api/session`): the credential is checked by the route itself.
    Session,
    /// A device asks for a pairing code, or collects its credentials (`/api/pair`).
    PairDevice,
    /// The registry: `GET /api/devices…`.
    ReadDevices,
    /// Calling a tool by hand: `POST /api/devices/{id}/tools/{tool}`.
    CallTool,
    /// Approving or declining a `confirm` tool: `POST /api/confirm`, `x-axon-confirmed`.
    Approve,
    /// An agent turn: `POST /api/chat`.
    Chat,
    /// A voice session: `GET /api/voice`.
    Voice,
    /// Live telemetry, events and timings: `GET /api/events`.
    ReadEvents,
    /// The person's own memory: `GET`/`DELETE /api/memory`.
    Memory,
    /// The owner's business: the activity log, approving pairings, revoking devices, people.
    Administer,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Go on.
    Allow,
    /// Refused, with the HTTP status (401: who are you; 403: not you) and the reason.
    Refuse {
        /// 401 or 403.
        status: u16,
        /// What to do about it.
        error: ErrorObject,
    },
}

impl Principal {
    /// Whether a request by this principal may do `action`.
    pub fn may(&self, action: Action) -> Access {
        use Action::*;
        let allowed = match self {
            _ if matches!(action, Health | Session | PairDevice) => true,
            Principal::Owner => true,
            Principal::Person(_) => !matches!(action, Approve | Administer),
            Principal::Device(_) => matches!(action, Chat | Voice),
            Principal::MediaEndpoint => matches!(action, Voice),
            Principal::Widget { .. } => matches!(action, Chat | Voice),
            Principal::Stranger | Principal::Invalid(_) => false,
        };
        if allowed {
            return Access::Allow;
        }
        let (status, message) = match self {
            Principal::Stranger => (
                401,
                "this needs a credential: the owner token (AXON_API_TOKEN) as \
                 \"Authorization: Bearer …\", a signed-in console, a person's token or a paired \
                 device's"
                    .to_string(),
            ),
            Principal::Invalid(why) => (401, format!("the credential was refused: {why}")),
            Principal::Person(p) => (403, format!("{p} may not do this: {}", owner_only(action))),
            Principal::Device(d) => (
                403,
                format!("device {d} may only talk and chat with the agent"),
            ),
            Principal::MediaEndpoint => (
                403,
                "the media endpoint's token opens voice sessions for calling devices and \
                 nothing else"
                    .to_string(),
            ),
            Principal::Widget { .. } => (
                403,
                "a widget key may only chat and talk with the agent; tools, devices, events, \
                 memory and approvals need the owner"
                    .to_string(),
            ),
            Principal::Owner => unreachable!("the owner may do everything"),
        };
        Access::Refuse {
            status,
            error: ErrorObject::new(code::DENIED, message),
        }
    }

    /// The person whose memory a turn reads and writes, if any: a widget's visitors are
    /// strangers to each other, so they get no memory at all.
    pub fn person(&self) -> Option<String> {
        match self {
            Principal::Owner => Some(OWNER.into()),
            Principal::Person(p) => Some(p.clone()),
            // A dot never occurs in a person's name: a device's speaker cannot be a person.
            Principal::Device(d) => Some(format!("device.{d}")),
            // The media endpoint speaks for the device that calls (`voice_speaker`).
            Principal::MediaEndpoint
            | Principal::Widget { .. }
            | Principal::Stranger
            | Principal::Invalid(_) => None,
        }
    }

    /// Who this is, for the activity log and rate limits: `owner`, `person:ada`,
    /// `device:kitchen-tab`, `widget:https://shop.example`, `stranger`.
    pub fn label(&self) -> String {
        match self {
            Principal::Owner => "owner".into(),
            Principal::Person(p) => format!("person:{p}"),
            Principal::Device(d) => format!("device:{d}"),
            Principal::MediaEndpoint => "media".into(),
            Principal::Widget { origin } => format!("widget:{origin}"),
            Principal::Stranger => "stranger".into(),
            Principal::Invalid(_) => "invalid".into(),
        }
    }

    /// Whether `/healthz` may show this principal the site's details.
    pub fn sees_details(&self) -> bool {
        matches!(self, Principal::Owner)
    }

    /// Checks a person named by the request (`"user"`, `?user=`) against the credential's:
    /// one person cannot speak, read or forget as another. The owner may name anyone of the
    /// site (a kiosk speaking for a household member): the owner can make anyone's token
    /// anyway, so this gives the owner nothing more.
    pub fn speaks_as(&self, named: Option<&str>) -> Result<Option<String>, ErrorObject> {
        let own = self.person();
        match (named, &own) {
            (None, _) => Ok(own),
            (Some(n), _) if *self == Principal::Owner => Ok(Some(n.to_string())),
            (Some(n), Some(o)) if n == o => Ok(own),
            (Some(n), _) => Err(ErrorObject::new(
                code::DENIED,
                format!(
                    "your credential speaks for {}, not {n}: leave \"user\" out, or sign in as {n}",
                    own.as_deref().unwrap_or("nobody with a memory")
                ),
            )),
        }
    }

    /// The person a voice session speaks as, given the request's `user` and `device`: as
    /// [`Principal::speaks_as`], except that the media endpoint must name the calling device
    /// and speaks as that device's speaker, never as a person it names.
    pub fn voice_speaker(
        &self,
        named: Option<&str>,
        device: Option<&str>,
    ) -> Result<Option<String>, ErrorObject> {
        if *self != Principal::MediaEndpoint {
            return self.speaks_as(named);
        }
        match (named, device) {
            (None, Some(d)) => Ok(Some(format!("device.{d}"))),
            (Some(_), _) => Err(ErrorObject::new(
                code::DENIED,
                "the media endpoint speaks for the calling device only: leave \"user\" out",
            )),
            (None, None) => Err(ErrorObject::new(
                code::INVALID_PARAMS,
                "the media endpoint must name the calling device (device=)",
            )),
        }
    }
}

/// The owner's person name (memory, activity).
pub const OWNER: &str = "owner";

fn owner_only(action: Action) -> &'static str {
    match action {
        Action::Approve => "only the owner approves a confirm tool",
        _ => "only the owner may (activity log, pairing, devices, people)",
    }
}

/// Whether `name` is a valid person name: `^[a-z][a-z0-9_-]{0,31}$` (no dot, so it never
/// clashes with a device's speaker).
pub fn valid_person(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    const ALL: [Action; 11] = [
        Health,
        Session,
        PairDevice,
        ReadDevices,
        CallTool,
        Approve,
        Chat,
        Voice,
        ReadEvents,
        Memory,
        Administer,
    ];

    fn allowed(p: &Principal) -> Vec<Action> {
        ALL.into_iter()
            .filter(|a| p.may(*a) == Access::Allow)
            .collect()
    }

    #[test]
    fn the_table() {
        let open = vec![Health, Session, PairDevice];
        assert_eq!(allowed(&Principal::Stranger), open);
        assert_eq!(allowed(&Principal::Invalid("revoked")), open);
        assert_eq!(allowed(&Principal::Owner), ALL.to_vec());
        assert_eq!(
            allowed(&Principal::Person("ada".into())),
            vec![
                Health,
                Session,
                PairDevice,
                ReadDevices,
                CallTool,
                Chat,
                Voice,
                ReadEvents,
                Memory
            ]
        );
        let talk = vec![Health, Session, PairDevice, Chat, Voice];
        assert_eq!(
            allowed(&Principal::MediaEndpoint),
            vec![Health, Session, PairDevice, Voice]
        );
        assert_eq!(allowed(&Principal::Device("tab".into())), talk);
        assert_eq!(
            allowed(&Principal::Widget {
                origin: "https://shop.example".into()
            }),
            talk
        );
    }

    #[test]
    fn refusals_say_401_for_who_and_403_for_not_you() {
        let status = |p: Principal, a| match p.may(a) {
            Access::Refuse { status, error } => {
                assert_eq!(error.code, code::DENIED);
                assert!(!error.message.is_empty());
                status
            }
            Access::Allow => 0,
        };
        assert_eq!(status(Principal::Stranger, CallTool), 401);
        assert_eq!(status(Principal::Invalid("revoked"), Chat), 401);
        assert_eq!(status(Principal::Person("ada".into()), Approve), 403);
        assert_eq!(status(Principal::Device("tab".into()), Memory), 403);
        assert_eq!(status(Principal::MediaEndpoint, Chat), 403);
        assert_eq!(status(Principal::MediaEndpoint, ReadDevices), 403);
        let w = Principal::Widget {
            origin: "https://shop.example".into(),
        };
        assert_eq!(status(w, CallTool), 403);
    }

    #[test]
    fn a_person_speaks_only_as_themselves() {
        let ada = Principal::Person("ada".into());
        assert_eq!(ada.speaks_as(None).unwrap().as_deref(), Some("ada"));
        assert_eq!(ada.speaks_as(Some("ada")).unwrap().as_deref(), Some("ada"));
        let e = ada.speaks_as(Some("bob")).unwrap_err();
        assert!(e.message.contains("not bob"), "{}", e.message);
        assert_eq!(Principal::Owner.person().as_deref(), Some(OWNER));
        assert_eq!(
            Principal::Owner.speaks_as(Some("ada")).unwrap().as_deref(),
            Some("ada")
        );
        assert_eq!(
            Principal::Device("tab-1".into()).person().as_deref(),
            Some("device.tab-1")
        );
        let w = Principal::Widget {
            origin: "https://shop.example".into(),
        };
        assert_eq!(w.person(), None);
        assert!(w.speaks_as(Some("owner")).is_err());
    }

    #[test]
    fn person_names() {
        assert!(valid_person("ada"));
        assert!(valid_person("bob-2_x"));
        assert!(!valid_person(""));
        assert!(!valid_person("Ada"));
        assert!(!valid_person("device.tab"));
        assert!(!valid_person("1ada"));
        assert!(!valid_person(&"a".repeat(33)));
    }

    #[test]
    fn the_media_endpoint_speaks_for_the_calling_device_only() {
        let m = Principal::MediaEndpoint;
        assert_eq!(
            m.voice_speaker(None, Some("kitchen-tab"))
                .ok()
                .flatten()
                .as_deref(),
            Some("device.kitchen-tab")
        );
        let named = m
            .voice_speaker(Some("ada"), Some("kitchen-tab"))
            .unwrap_err();
        assert_eq!(named.code, code::DENIED);
        let nameless = m.voice_speaker(None, None).unwrap_err();
        assert_eq!(nameless.code, code::INVALID_PARAMS);
        assert_eq!(m.person(), None);
        assert_eq!(m.label(), "media");
        // Everyone else: as speaks_as, the device ignored.
        let ada = Principal::Person("ada".into());
        assert_eq!(
            ada.voice_speaker(None, Some("x")).ok().flatten().as_deref(),
            Some("ada")
        );
    }
}
