//! Who may do what: the broker accounts of devices, Hubs and the owner, and their ACLs.
//!
//! Owns the account model as data ([`broker`]): each account's ACL list and the typed
//! commands and responses of Mosquitto's dynamic security plugin that create, rotate and revoke
//! accounts. Never opens a connection, never draws a password (passwords come in from the
//! shell's OS randomness) and never logs one.

pub mod broker;
