-- Sign-in tokens of the Federated policy of Windows enrollment (package
-- platform/windows/mde). Only the SHA-256 of a token is stored; the
-- activation password the user gave the sign-in page is sealed with the
-- Core's secret.Box, for the enrollment that consumes the token and then
-- the password. Expired tokens are deleted when a new one is created.
CREATE TABLE windows_federated_tokens (
    hash            BYTEA PRIMARY KEY,
    login           TEXT NOT NULL,
    sealed_password TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX windows_federated_tokens_expiry ON windows_federated_tokens (expires_at);
