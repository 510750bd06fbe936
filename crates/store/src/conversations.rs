//! Conversations: what one principal said to an agent (or, in an ad-hoc chat, to one
//! server's tools) and what was answered, message by message.
//!
//! A message is stored as the JSON text the agent loop gives (one provider-neutral message);
//! the store never reads inside it. Whether a caller may read a conversation is decided above
//! this crate, from [`Conversation::principal`].

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    AgentId, ConversationId, PrincipalId, ServerId, Store, StoreError, Timestamp, from_millis, now,
    to_millis,
};

/// The longest title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 80;

/// What a conversation is with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConversationSubject {
    /// An agent.
    Agent(AgentId),
    /// One server's tools, with the default provider (ChatMCP).
    Server(ServerId),
}

/// A conversation as listed (without its messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// Whose it is.
    pub principal: PrincipalId,
    /// What it is with.
    pub subject: ConversationSubject,
    /// Its title: the first message, cut to [`MAX_TITLE_CHARS`].
    pub title: String,
    /// When it started.
    pub created_at: Timestamp,
    /// When its last message was added.
    pub updated_at: Timestamp,
}

/// Access to conversations; obtained from [`Store::conversations`].
pub struct Conversations<'a> {
    pub(crate) store: &'a Store,
}

impl Conversations<'_> {
    /// Starts a conversation of `principal` with `subject`, titled by (the start of) `title`.
    pub async fn create(
        &self,
        principal: &PrincipalId,
        subject: &ConversationSubject,
        title: &str,
    ) -> Result<ConversationId, StoreError> {
        let id = ConversationId::generate();
        let (agent, server) = match subject {
            ConversationSubject::Agent(agent) => (Some(agent), None),
            ConversationSubject::Server(server) => (None, Some(server)),
        };
        let at = to_millis(now());
        crate::sql::query(
            "INSERT INTO conversations (id, principal_id, agent_id, server_id, title, created_at,
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(principal)
        .bind(agent)
        .bind(server)
        .bind(cut_title(title))
        .bind(at)
        .bind(at)
        .execute(&self.store.pool)
        .await?;
        Ok(id)
    }

    /// Appends `bodies` (one JSON message each) to conversation `id`, after its last message.
    pub async fn append(&self, id: &ConversationId, bodies: &[String]) -> Result<(), StoreError> {
        let at = to_millis(now());
        let mut tx = self.store.write().await?;
        let found = crate::sql::query("UPDATE conversations SET updated_at = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            return Err(StoreError::Conflict(format!(
                "conversation {id} does not exist (any more); start a new one"
            )));
        }
        let last: Option<i64> = crate::sql::query_scalar(
            "SELECT max(seq) AS last FROM conversation_messages WHERE conversation_id = ?",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let mut seq = last.unwrap_or(0);
        for body in bodies {
            seq += 1;
            crate::sql::query(
                "INSERT INTO conversation_messages (conversation_id, seq, body, created_at)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(seq)
            .bind(body)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The messages of conversation `id`, oldest first.
    pub async fn messages(&self, id: &ConversationId) -> Result<Vec<String>, StoreError> {
        Ok(crate::sql::query_scalar(
            "SELECT body FROM conversation_messages WHERE conversation_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// `principal`'s conversations with `subject`, the most recently active first.
    pub async fn list(
        &self,
        principal: &PrincipalId,
        subject: &ConversationSubject,
    ) -> Result<Vec<Conversation>, StoreError> {
        let (agent, server) = match subject {
            ConversationSubject::Agent(agent) => (Some(agent), None),
            ConversationSubject::Server(server) => (None, Some(server)),
        };
        let rows = crate::sql::query(
            "SELECT id, principal_id, agent_id, server_id, title, created_at, updated_at
             FROM conversations
             WHERE principal_id = ? AND agent_id IS NOT DISTINCT FROM ?
               AND server_id IS NOT DISTINCT FROM ?
             ORDER BY updated_at DESC, id DESC",
        )
        .bind(principal)
        .bind(agent)
        .bind(server)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter().map(conversation).collect()
    }

    /// Conversation `id`, if it exists (whoever owns it: the caller checks).
    pub async fn find(&self, id: &ConversationId) -> Result<Option<Conversation>, StoreError> {
        let row = crate::sql::query(
            "SELECT id, principal_id, agent_id, server_id, title, created_at, updated_at
             FROM conversations WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.store.pool)
        .await?;
        row.as_ref().map(conversation).transpose()
    }
}

/// `title` cut to [`MAX_TITLE_CHARS`] characters (never inside a character), on one line.
fn cut_title(title: &str) -> String {
    let line: String = title
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.char_indices().nth(MAX_TITLE_CHARS) {
        Some((end, _)) => line[..end].trim_end().to_owned(),
        None => line,
    }
}

fn conversation(row: &AnyRow) -> Result<Conversation, StoreError> {
    let agent: Option<AgentId> = row.try_get("agent_id")?;
    let server: Option<ServerId> = row.try_get("server_id")?;
    let subject = match (agent, server) {
        (Some(agent), None) => ConversationSubject::Agent(agent),
        (None, Some(server)) => ConversationSubject::Server(server),
        _ => {
            return Err(StoreError::Corrupt(
                "a conversation is with an agent or a server, not both or neither".to_owned(),
            ));
        }
    };
    Ok(Conversation {
        id: row.try_get("id")?,
        principal: row.try_get("principal_id")?,
        subject,
        title: row.try_get("title")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}
