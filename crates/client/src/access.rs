//! Users, groups, logins and per-server access.

use reqwest::Method;
use skyport_api::{
    AccessView, CreateGroup, CreateUser, GrantView, GroupView, KeyCreated, Login, SetDefaultRole,
    UserCreated, UserView,
};

use crate::{Client, ClientError, path_segment};

impl Client {
    /// Logs `user` in with `password`: a new API key acting as them (no token needed).
    pub async fn login(&self, user: &str, password: &str) -> Result<KeyCreated, ClientError> {
        let body = Login {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        self.send(self.api(Method::POST, "/login").json(&body))
            .await
    }

    /// Every user and service account (org admins).
    pub async fn users(&self) -> Result<Vec<UserView>, ClientError> {
        self.send(self.api(Method::GET, "/users")).await
    }

    /// Creates a user or service account (org admins).
    pub async fn create_user(&self, request: &CreateUser) -> Result<UserCreated, ClientError> {
        self.send(self.api(Method::POST, "/users").json(request))
            .await
    }

    /// Removes a user or service account with its keys (org admins).
    pub async fn remove_user(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/users/{}", path_segment(name));
        self.send_empty(self.api(Method::DELETE, &path)).await
    }

    /// Every group with its members.
    pub async fn groups(&self) -> Result<Vec<GroupView>, ClientError> {
        self.send(self.api(Method::GET, "/groups")).await
    }

    /// Creates a group (org admins).
    pub async fn create_group(&self, name: &str) -> Result<GroupView, ClientError> {
        let body = CreateGroup {
            name: name.to_owned(),
        };
        self.send(self.api(Method::POST, "/groups").json(&body))
            .await
    }

    /// Removes a group with its grants (org admins).
    pub async fn remove_group(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/groups/{}", path_segment(name));
        self.send_empty(self.api(Method::DELETE, &path)).await
    }

    /// Adds (`true`) or removes (`false`) `member` to or from `group` (org admins); returns
    /// the group.
    pub async fn set_member(
        &self,
        group: &str,
        member: &str,
        present: bool,
    ) -> Result<GroupView, ClientError> {
        let path = format!(
            "/groups/{}/members/{}",
            path_segment(group),
            path_segment(member)
        );
        let method = if present { Method::PUT } else { Method::DELETE };
        self.send(self.api(method, &path)).await
    }

    /// A server's default role and grants.
    pub async fn access(&self, server: &str) -> Result<AccessView, ClientError> {
        self.send(self.api(Method::GET, &format!("/servers/{server}/access")))
            .await
    }

    /// Grants `role` on `server` to `who` (a principal's name or `group:NAME`).
    pub async fn grant(
        &self,
        server: &str,
        who: &str,
        role: &str,
    ) -> Result<AccessView, ClientError> {
        let body = GrantView {
            who: who.to_owned(),
            role: role.to_owned(),
        };
        let path = format!("/servers/{server}/access/grants");
        self.send(self.api(Method::POST, &path).json(&body)).await
    }

    /// Removes `who`'s grant on `server`.
    pub async fn revoke(&self, server: &str, who: &str) -> Result<AccessView, ClientError> {
        let path = format!("/servers/{server}/access/grants/{}", path_segment(who));
        self.send(self.api(Method::DELETE, &path)).await
    }

    /// Sets `server`'s default role (`none` for none).
    pub async fn set_default_role(
        &self,
        server: &str,
        role: &str,
    ) -> Result<AccessView, ClientError> {
        let body = SetDefaultRole {
            role: role.to_owned(),
        };
        let path = format!("/servers/{server}/access/default");
        self.send(self.api(Method::PUT, &path).json(&body)).await
    }
}
