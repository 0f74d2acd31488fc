//! Fuzzes the event decoder and the decision: the first line of the input is the `X-GitHub-Event` name,
//! the rest the body. Decoding may fail (a dead letter) but must not panic, and whatever decodes must
//! get at least one action that serialises.
#![no_main]

use foreman::decide::{self, DecideConfig, Snapshot};
use foreman::event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (name, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"issue_comment"[..], data),
    };
    let Ok(name) = std::str::from_utf8(name) else { return };
    if let Ok(event) = event::decode(name, body) {
        let actions = decide::decide(&event, &DecideConfig::default(), &Snapshot::default());
        assert!(!actions.is_empty());
        for action in &actions {
            serde_json::to_string(action).expect("an action serialises");
        }
    }
});
