//! The provider-neutral part of a chat: what was asked, and the deterministic answer with its
//! token counts. Each provider module reads its own request format into a [`Prompt`] and writes
//! the [`Completion`] back in its own format.

/// Arguments of the deterministic tool call (see the crate docs).
pub const TOOL_CALL_ARGUMENTS: &str = r#"{"location":"Paris"}"#;

/// Completion tokens reported for a tool-call answer.
pub const TOOL_CALL_COMPLETION_TOKENS: u64 = 10;

/// The answer text for a prompt of `messages` messages and `words` words (before any
/// `max_tokens` cut). Exposed so tests can compute expected answers.
pub fn answer_text(mock_name: &str, model: &str, messages: usize, words: usize) -> String {
    format!("Hello from {mock_name} ({model}). Prompt: {messages} messages, {words} words.")
}

/// What a chat request asks for, in any provider's format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Prompt {
    pub model: String,
    /// The text of each message, a system prompt included, in order.
    pub message_texts: Vec<String>,
    /// Cap on completion tokens, if the request sets one.
    pub max_tokens: Option<u64>,
    /// Name of the first declared tool, if any.
    pub first_tool: Option<String>,
    /// Text of the last message when it is from the user; empty otherwise.
    pub last_user_text: String,
}

/// Why the answer ended, mapped by each provider to its own vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The whole answer was produced.
    Complete,
    /// Cut by the request's `max_tokens`.
    Length,
    /// The answer is a tool call.
    ToolCall,
}

/// The answer itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Text(String),
    ToolCall { name: String, arguments: String },
}

/// A complete deterministic completion for one prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub answer: Answer,
    pub finish: Finish,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Completion {
    /// Computes the answer to `prompt` from the mock named `mock_name` (formula in the crate docs).
    pub(crate) fn answer(mock_name: &str, prompt: &Prompt) -> Completion {
        let words: usize = prompt.message_texts.iter().map(|t| word_count(t)).sum();
        let messages = prompt.message_texts.len();
        let prompt_tokens = (words + messages) as u64;

        if let Some(tool) = &prompt.first_tool {
            if mentions_weather(&prompt.last_user_text) {
                return Completion {
                    answer: Answer::ToolCall {
                        name: tool.clone(),
                        arguments: TOOL_CALL_ARGUMENTS.to_string(),
                    },
                    finish: Finish::ToolCall,
                    prompt_tokens,
                    completion_tokens: TOOL_CALL_COMPLETION_TOKENS,
                };
            }
        }

        let full = answer_text(mock_name, &prompt.model, messages, words);
        let full_words: Vec<&str> = full.split_whitespace().collect();
        let cap = prompt
            .max_tokens
            .map_or(usize::MAX, |cap| usize::try_from(cap).unwrap_or(usize::MAX));
        let (text, finish) = if full_words.len() > cap {
            (full_words[..cap].join(" "), Finish::Length)
        } else {
            (full, Finish::Complete)
        };
        Completion {
            completion_tokens: word_count(&text) as u64,
            answer: Answer::Text(text),
            finish,
            prompt_tokens,
        }
    }

    pub(crate) fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// Number of whitespace-separated words.
pub(crate) fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The answer split into stream pieces: one per word, every word after the first with its
/// leading space, so the pieces concatenate back to the text.
pub(crate) fn stream_pieces(text: &str) -> Vec<String> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            }
        })
        .collect()
}

fn mentions_weather(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| word.eq_ignore_ascii_case("weather"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(texts: &[&str]) -> Prompt {
        Prompt {
            model: "m".into(),
            message_texts: texts.iter().map(|t| t.to_string()).collect(),
            last_user_text: texts.last().map(|t| t.to_string()).unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn prompt_tokens_are_words_plus_one_per_message() {
        let completion = Completion::answer("mock-x", &prompt(&["be brief", "say  hi\nnow"]));
        assert_eq!(completion.prompt_tokens, 2 + 3 + 2);
        assert_eq!(
            completion.answer,
            Answer::Text("Hello from mock-x (m). Prompt: 2 messages, 5 words.".into())
        );
        assert_eq!(completion.completion_tokens, 9);
        assert_eq!(completion.finish, Finish::Complete);
    }

    #[test]
    fn max_tokens_cuts_the_answer_to_that_many_words() {
        let mut p = prompt(&["hi"]);
        p.max_tokens = Some(3);
        let completion = Completion::answer("mock-x", &p);
        assert_eq!(completion.answer, Answer::Text("Hello from mock-x".into()));
        assert_eq!(completion.completion_tokens, 3);
        assert_eq!(completion.finish, Finish::Length);
    }

    #[test]
    fn weather_question_with_tools_calls_the_first_tool() {
        let mut p = prompt(&["What's the Weather in Paris?"]);
        p.first_tool = Some("get_weather".into());
        let completion = Completion::answer("mock-x", &p);
        assert_eq!(completion.finish, Finish::ToolCall);
        assert_eq!(completion.completion_tokens, TOOL_CALL_COMPLETION_TOKENS);

        p.first_tool = None;
        assert_eq!(Completion::answer("mock-x", &p).finish, Finish::Complete);
        p.first_tool = Some("get_weather".into());
        p.last_user_text = "weatherproof".into();
        assert_eq!(Completion::answer("mock-x", &p).finish, Finish::Complete);
    }

    #[test]
    fn stream_pieces_concatenate_to_the_text() {
        let pieces = stream_pieces("Hello from mock (m).");
        assert_eq!(pieces, ["Hello", " from", " mock", " (m)."]);
        assert_eq!(pieces.concat(), "Hello from mock (m).");
    }
}
