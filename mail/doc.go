// Package mail sends the email of step 1 of every activation flow in the
// seed: "automatically generate a device activation password and,
// optionally, a QR Code and send an email with activation instructions".
//
// It has three parts:
//
//   - Config and Sender: an SMTP submission client (RFC 5321) built on
//     github.com/emersion/go-smtp. STARTTLS (RFC 3207) is the default and
//     is required: a server that does not offer it gets no message and no
//     password, never a silent downgrade to clear text. Implicit TLS
//     (RFC 8314, port 465) is the alternative; clear text is allowed only
//     to a loopback host, for tests and development. AUTH PLAIN (RFC 4954)
//     is sent only inside TLS.
//   - Message: a validated message (no CR or LF in any header value: no
//     header injection) encoded as RFC 5322 + MIME (RFC 2045/2046):
//     multipart/alternative of a text part and an HTML part, the HTML part
//     in multipart/related (RFC 2387) with its inline images referenced by
//     cid: URLs (RFC 2392).
//   - Activation, Templates and Renderer: the activation email, rendered
//     from editable templates (text/template for the subject and the text
//     part, html/template for the HTML part so that user-controlled values
//     are escaped), with a QR code (QRPayload, QRPNG) that carries the
//     server route, the user's email and the one-time password, as the
//     self-service portal shows them.
//
// Errors are *errs.Error: a permanent SMTP refusal (5xx) is "mail_refused"
// with the server's reply (bounded) in the safe message; a temporary one
// (4xx) or a connection failure is "mail_unavailable". The SMTP password
// never appears in an error, a log line or a formatted Config.
//
// mail/mailtest is an in-process SMTP server for tests.
package mail
