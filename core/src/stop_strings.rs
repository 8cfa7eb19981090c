//! `StopStrings`: finds stop strings in streamed text, even split across pieces,
//! and holds back text that might be the start of one so it is never emitted.

/// Streaming matcher over a set of stop strings.
#[derive(Debug, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
}

/// What to do with newly generated text.
#[derive(Debug, PartialEq, Eq)]
pub enum StopCheck {
    /// Emit this text (possibly empty) and keep going.
    Continue(String),
    /// A stop string was found: emit this text, which ends right before it, and stop.
    Stop(String),
}

impl StopStrings {
    /// A matcher for `stops` (empty strings are ignored here;
    /// [`GenerateOptions::validate`](crate::GenerateOptions::validate) refuses them).
    pub fn new(stops: &[String]) -> StopStrings {
        StopStrings {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Feeds the next piece of text.
    pub fn push(&mut self, piece: &str) -> StopCheck {
        self.held.push_str(piece);
        let first_match = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first_match {
            let text = self.held[..at].to_string();
            self.held.clear();
            return StopCheck::Stop(text);
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&self.held[i..])))
            .unwrap_or(self.held.len());
        let text = self.held[..keep].to_string();
        self.held.drain(..keep);
        StopCheck::Continue(text)
    }

    /// Releases the held-back text at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_string_split_across_pieces_is_found_and_not_emitted() {
        let mut stops = StopStrings::new(&["\n\nUser:".to_string()]);
        assert_eq!(stops.push("Hello"), StopCheck::Continue("Hello".into()));
        assert_eq!(stops.push(" there\n"), StopCheck::Continue(" there".into()));
        assert_eq!(stops.push("\nUs"), StopCheck::Continue(String::new()));
        assert_eq!(stops.push("er: hi"), StopCheck::Stop(String::new()));
    }

    #[test]
    fn false_start_is_released() {
        let mut stops = StopStrings::new(&["STOP".to_string()]);
        assert_eq!(stops.push("ST"), StopCheck::Continue(String::new()));
        assert_eq!(stops.push("AR"), StopCheck::Continue("STAR".into()));
        assert_eq!(stops.push("S"), StopCheck::Continue(String::new()));
        assert_eq!(stops.finish(), "S");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut stops = StopStrings::new(&["b".to_string(), "cd".to_string()]);
        assert_eq!(stops.push("a cd b"), StopCheck::Stop("a ".into()));
    }

    #[test]
    fn multibyte_text_is_held_on_char_boundaries() {
        let mut stops = StopStrings::new(&["é!".to_string()]);
        assert_eq!(stops.push("café"), StopCheck::Continue("caf".into()));
        assert_eq!(stops.push("?"), StopCheck::Continue("é?".into()));
    }
}
