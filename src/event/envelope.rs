//! What every delivery shares, in one place for the webhook ingress (which stores it beside the body) and
//! the decoder: the events Foreman handles ([`HANDLED_EVENTS`]) and the envelope of a payload
//! ([`Envelope`]: `action`, `installation.id`, `repository.full_name`, `sender`).
//!
//! The envelope is read in one pass over the body, leniently: a field of an unexpected shape (an `action`
//! that is not a string, an `installation` without a numeric `id`) is absent rather than an error, so an
//! ignored event keeps what it has. Only a body that is not JSON fails. Nothing but the four fields is
//! built: a repository object has about a hundred fields, and building them for each delivery cost more
//! than the rest of the decoding.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::ids::InstallationId;

/// The events (`X-GitHub-Event`) Foreman acts on. The ingress answers other verified events 204 without
/// storing them; the decoder decodes others to an ignored event.
pub const HANDLED_EVENTS: &[&str] = &[
    "issues",
    "issue_comment",
    "issue_dependencies",
    "sub_issues",
    "projects_v2_item",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "installation",
    "installation_repositories",
    "push",
    "workflow_run",
    "workflow_job",
];

/// Whether Foreman acts on the event named `event` (see [`HANDLED_EVENTS`]).
pub fn is_handled(event: &str) -> bool {
    HANDLED_EVENTS.contains(&event)
}

/// The fields every payload may carry, each `None` when absent or of another shape.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    /// `action`, e.g. `labeled`.
    pub action: Option<Cow<'a, str>>,
    /// `installation.id`.
    pub installation: Option<InstallationId>,
    /// `repository.full_name` as written (`owner/name`, not checked).
    pub repository: Option<Cow<'a, str>>,
    /// `sender`, as its raw JSON text (the decoder reads the user out of it).
    pub sender: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope of `body`.
    ///
    /// # Errors
    /// serde_json's, when `body` is not JSON (or holds one of the four keys twice).
    pub fn read(body: &'a [u8]) -> Result<Envelope<'a>, serde_json::Error> {
        let f: Fields<'a> = serde_json::from_slice(body)?;
        Ok(Envelope {
            action: f.action.0,
            installation: f.installation.0.map(InstallationId),
            repository: f.repository.0,
            sender: f.sender,
        })
    }
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    action: Text<'a>,
    #[serde(default)]
    installation: InstallationField,
    #[serde(borrow, default)]
    repository: RepositoryField<'a>,
    #[serde(borrow, default)]
    sender: Option<&'a RawValue>,
}

/// A string, or nothing for a value of another type.
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

/// `id` of an object, when it is an unsigned integer.
#[derive(Default)]
struct InstallationField(Option<u64>);

/// `full_name` of an object, when it is a string.
#[derive(Default)]
struct RepositoryField<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Text(Pick(Want::Str).deserialize(d)?.text()))
    }
}

impl<'de> Deserialize<'de> for InstallationField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(InstallationField(Pick(Want::Field("id", &Want::U64)).deserialize(d)?.number()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RepositoryField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RepositoryField(Pick(Want::Field("full_name", &Want::Str)).deserialize(d)?.text()))
    }
}

/// The shape a lenient read keeps; any other value is skipped.
#[derive(Clone, Copy)]
enum Want {
    /// A string.
    Str,
    /// An unsigned integer.
    U64,
    /// The value under a key of an object, of the shape given.
    Field(&'static str, &'static Want),
}

/// What a lenient read kept.
enum Picked<'a> {
    Nothing,
    Str(Cow<'a, str>),
    U64(u64),
}

impl<'a> Picked<'a> {
    fn text(self) -> Option<Cow<'a, str>> {
        match self {
            Picked::Str(s) => Some(s),
            _ => None,
        }
    }

    fn number(self) -> Option<u64> {
        match self {
            Picked::U64(n) => Some(n),
            _ => None,
        }
    }
}

/// Reads any JSON value in one pass, keeping only what [`Want`] names.
struct Pick(Want);

impl<'de> DeserializeSeed<'de> for Pick {
    type Value = Picked<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Picked<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pick {
    type Value = Picked<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Picked<'de>, E> {
        Ok(Picked::Nothing)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Picked<'de>, E> {
        Ok(Picked::Nothing)
    }

    fn visit_u64<E>(self, v: u64) -> Result<Picked<'de>, E> {
        Ok(if matches!(self.0, Want::U64) { Picked::U64(v) } else { Picked::Nothing })
    }

    fn visit_f64<E>(self, _: f64) -> Result<Picked<'de>, E> {
        Ok(Picked::Nothing)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Picked<'de>, E> {
        Ok(if matches!(self.0, Want::Str) { Picked::Str(Cow::Borrowed(v)) } else { Picked::Nothing })
    }

    fn visit_str<E>(self, v: &str) -> Result<Picked<'de>, E> {
        Ok(if matches!(self.0, Want::Str) { Picked::Str(Cow::Owned(v.to_owned())) } else { Picked::Nothing })
    }

    fn visit_unit<E>(self) -> Result<Picked<'de>, E> {
        Ok(Picked::Nothing)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Picked<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Picked::Nothing)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked<'de>, A::Error> {
        let (key, inner) = match self.0 {
            Want::Field(key, inner) => (Some(key), Some(*inner)),
            _ => (None, None),
        };
        let mut picked = Picked::Nothing;
        while let Some(hit) = map.next_key_seed(KeyIs(key))? {
            match (hit, inner) {
                (true, Some(inner)) => picked = map.next_value_seed(Pick(inner))?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            }
        }
        Ok(picked)
    }
}

/// Reads an object's key, answering whether it is the one named (never, for `None`).
struct KeyIs(Option<&'static str>);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(self.0 == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_keeps_what_has_its_shape() {
        let body = br#"{"zen":[1,{"a":null}],"action":"labeled","installation":{"node_id":"x","id":42},
            "repository":{"id":7,"owner":{"login":"acme"},"full_name":"acme/widgets","private":false},
            "sender":{"login":"alice","id":1}}"#;
        let e = Envelope::read(body).unwrap();
        assert_eq!(e.action.as_deref(), Some("labeled"));
        assert_eq!(e.installation, Some(InstallationId(42)));
        assert_eq!(e.repository.as_deref(), Some("acme/widgets"));
        assert_eq!(e.sender.map(|s| s.get()), Some(r#"{"login":"alice","id":1}"#));
    }

    #[test]
    fn a_field_of_another_shape_is_absent_and_only_bad_json_fails() {
        let body = br#"{"action":5,"installation":{"id":"42"},"repository":"acme/widgets","sender":null}"#;
        let e = Envelope::read(body).unwrap();
        assert!(e.action.is_none() && e.installation.is_none() && e.repository.is_none() && e.sender.is_none());
        let e = Envelope::read(br#"{"installation":{"id":-1},"repository":{"full_name":["a/b"]}}"#).unwrap();
        assert!(e.installation.is_none() && e.repository.is_none());
        let e = Envelope::read(br#"{"action":"a\"b","repository":{"full_name":"o/\u0072"}}"#).unwrap();
        assert_eq!((e.action.as_deref(), e.repository.as_deref()), (Some("a\"b"), Some("o/r")));
        assert!(Envelope::read(b"{\"action\":").is_err());
        assert!(Envelope::read(b"{}").unwrap().action.is_none());
    }

    #[test]
    fn handled_events_are_known() {
        assert!(is_handled("issues") && is_handled("projects_v2_item"));
        assert!(is_handled("push"), "a push can change the constitution");
        assert!(is_handled("workflow_run") && is_handled("workflow_job"), "a session's run can end without it");
        assert!(!is_handled("ping") && !is_handled("star") && !is_handled("check_suite"));
    }
}
