//! Fuzzes the slash-command parser: it must not panic on any comment body, and a body wrapped in a
//! fenced code block must never yield a command.
#![no_main]

use foreman::decide::command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else { return };
    for found in command::parse(body, "foreman") {
        // Whatever was found is a line addressed to Foreman.
        let line = found.line.to_lowercase();
        assert!(line.starts_with("/foreman") || line.starts_with("@foreman"), "{line:?}");
        if let Err(e) = &found.parsed {
            let _ = e.reply(&found.line, None);
        }
    }
    // No line of the body can close a fence longer than its longest run of backticks.
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let hidden = format!("{fence}\n{}\n{fence}\n", body.replace('\r', ""));
    assert!(command::parse(&hidden, "foreman").is_empty(), "a command escaped a code block: {hidden:?}");
});
