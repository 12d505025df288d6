//! MQTT topic filter validation and matching for the FROM clause.

/// Checks a topic filter against the MQTT 3.1.1 syntax and returns what is wrong.
///
/// A filter is valid when it is not empty, contains no NUL character, uses `+`
/// only as a whole level, and uses `#` only as the whole last level.
pub(super) fn validate_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("a topic filter must not be empty");
    }
    if filter.contains('\0') {
        return Err("a topic filter must not contain the NUL character");
    }
    let level_count = filter.split('/').count();
    for (index, level) in filter.split('/').enumerate() {
        if level.contains('#') && (level != "#" || index + 1 != level_count) {
            return Err("`#` must be the whole last level, as in \"sensors/#\"");
        }
        if level.contains('+') && level != "+" {
            return Err("`+` must be a whole level, as in \"sensors/+/temperature\"");
        }
    }
    Ok(())
}

/// Returns whether an MQTT topic name matches a topic filter.
///
/// The rules are those of MQTT 3.1.1: `+` matches exactly one level (which may
/// be empty), and a trailing `#` matches any number of levels, including none, so
/// `"sensors/#"` also matches `"sensors"`. A filter that starts with a wildcard
/// does not match a topic that starts with `$`. An invalid filter, an empty topic
/// and a topic that contains a wildcard character match nothing.
#[must_use]
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) || validate_filter(filter).is_err() {
        return false;
    }
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }

    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(filter_level), Some(topic_level)) => {
                if filter_level != topic_level {
                    return false;
                }
            }
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matches_table() {
        let cases = [
            ("a/b/c", "a/b/c", true),
            ("a/b/c", "a/b", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/B/c", false),
            ("a/+/c", "a/b/c", true),
            ("a/+/c", "a//c", true),
            ("a/+/c", "a/b/d", false),
            ("a/+", "a/b/c", false),
            ("+", "a", true),
            ("+", "/a", false),
            ("+/+", "/a", true),
            ("a/#", "a", true),
            ("a/#", "a/", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("#", "a/b", true),
            ("#", "/", true),
            ("+/#", "a", true),
            ("#", "$SYS/broker", false),
            ("+/broker", "$SYS/broker", false),
            ("$SYS/#", "$SYS/broker", true),
            (
                "Emulators/Weather/SensorReadings",
                "Emulators/Weather/SensorReadings",
                true,
            ),
            (
                "Emulators/+/SensorReadings",
                "Emulators/Weather/SensorReadings",
                true,
            ),
            ("Emulators/#", "Emulators/Weather/SensorReadings", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(
                topic_matches(filter, topic),
                expected,
                "filter {filter:?}, topic {topic:?}"
            );
        }
    }

    #[test]
    fn topic_matches_rejects_invalid_inputs() {
        let cases = [
            ("a/#/b", "a/x/b"),
            ("a#", "a#"),
            ("a/b+", "a/b+"),
            ("", ""),
            ("a", ""),
            ("+", "+"),
            ("#", "a/#"),
        ];
        for (filter, topic) in cases {
            assert!(
                !topic_matches(filter, topic),
                "filter {filter:?}, topic {topic:?}"
            );
        }
    }

    #[test]
    fn validate_filter_messages() {
        assert!(validate_filter("a/+/#").is_ok());
        assert!(validate_filter("").is_err_and(|message| message.contains("empty")));
        assert!(validate_filter("a/#/b").is_err_and(|message| message.contains("last level")));
        assert!(validate_filter("a/b#").is_err_and(|message| message.contains("last level")));
        assert!(validate_filter("a/x+").is_err_and(|message| message.contains("whole level")));
        assert!(validate_filter("a\0b").is_err_and(|message| message.contains("NUL")));
    }
}
