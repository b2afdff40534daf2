//! What a mock is: which provider it imitates, where it listens, which key it expects.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::faults::InstanceFaults;

/// The provider wire format a mock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// OpenAI `POST /v1/chat/completions`, `Authorization: Bearer`.
    Openai,
    /// Anthropic `POST /v1/messages`, `x-api-key` + `anthropic-version`.
    Anthropic,
    /// Google Gemini `generateContent` / `streamGenerateContent`, `x-goog-api-key` or `?key=`.
    Gemini,
    /// Ollama's OpenAI-compatible `/v1/chat/completions` and `/api/tags`, no authentication.
    Ollama,
}

impl Kind {
    /// Every kind, in the order the binary documents them.
    pub const ALL: [Kind; 4] = [Kind::Openai, Kind::Anthropic, Kind::Gemini, Kind::Ollama];

    /// Lower-case name as used on the command line and in default mock names.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Openai => "openai",
            Kind::Anthropic => "anthropic",
            Kind::Gemini => "gemini",
            Kind::Ollama => "ollama",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = MockError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| MockError::UnknownKind(s.to_string()))
    }
}

/// Everything needed to start one mock provider.
#[derive(Clone)]
pub struct MockConfig {
    /// Which provider's wire format to speak.
    pub kind: Kind,
    /// Name used in answers (`Hello from {name} ...`) and the `x-mock-name` response header,
    /// so a test can tell which of several mocks answered.
    pub name: String,
    /// Where to listen; port 0 picks a free port (read it back with [`MockHandle::addr`]).
    ///
    /// [`MockHandle::addr`]: crate::MockHandle::addr
    pub addr: SocketAddr,
    /// The key requests must carry; `None` accepts any request. Ignored by Ollama.
    pub api_key: Option<String>,
    /// Faults applied to every request from the start.
    pub faults: InstanceFaults,
}

impl MockConfig {
    /// A mock of `kind` on `addr` named `mock-<kind>`, without key and without faults.
    pub fn new(kind: Kind, addr: SocketAddr) -> Self {
        MockConfig {
            kind,
            name: format!("mock-{kind}"),
            addr,
            api_key: None,
            faults: InstanceFaults::default(),
        }
    }
}

/// Shows whether a key is set, never the key itself.
impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("faults", &self.faults)
            .finish()
    }
}

/// Why a mock could not be started or reconfigured.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The address is taken or not bindable.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The runtime or the mock's thread could not be created.
    #[error("cannot start the mock's runtime: {0}")]
    Runtime(std::io::Error),
    /// A fault setting is out of range (e.g. a status that is not an error status).
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    /// A provider kind name that is not one of openai, anthropic, gemini, ollama.
    #[error("unknown provider kind `{0}` (expected openai, anthropic, gemini or ollama)")]
    UnknownKind(String),
}
