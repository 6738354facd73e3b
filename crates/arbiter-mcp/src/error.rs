//! What can go wrong starting or running the gateway.

/// A gateway error: a mistake in its configuration, an upstream that cannot
/// be started or reached, Arbiter unreachable at startup, or a transport
/// failure serving the client.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is wrong (the message says how to fix it).
    #[error("{0}")]
    Config(String),
    /// An upstream's command could not be started.
    #[error("cannot start the upstream `{name}`: {command}: {source}")]
    Start {
        /// The upstream's name.
        name: String,
        /// Its command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An upstream did not complete the MCP handshake.
    #[error("the upstream `{name}` ({target}) did not complete the MCP handshake: {source}")]
    Handshake {
        /// The upstream's name.
        name: String,
        /// Its command or URL.
        target: String,
        /// Why (boxed: the MCP library's error is large).
        #[source]
        source: Box<rmcp::service::ClientInitializeError>,
    },
    /// An upstream did not list its tools.
    #[error("the upstream `{name}` did not list its tools: {source}")]
    ListTools {
        /// The upstream's name.
        name: String,
        /// Why.
        #[source]
        source: rmcp::ServiceError,
    },
    /// Arbiter's receipt keys could not be read at startup.
    #[error("cannot read Arbiter's receipt keys (GET /v1/receipts/keys): {0}")]
    ReceiptKeys(#[source] arbiter_client::Error),
    /// The MCP client's handshake with the gateway failed.
    #[error("the MCP client's handshake failed: {0}")]
    ClientHandshake(#[source] Box<rmcp::service::ServerInitializeError>),
    /// The session with the MCP client ended abnormally.
    #[error("the MCP session ended abnormally: {0}")]
    Session(#[source] tokio::task::JoinError),
    /// The HTTP server for MCP clients failed.
    #[error("the MCP HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}
