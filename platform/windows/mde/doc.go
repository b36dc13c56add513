// Package mde is the enrollment half of Windows 10/11 device management:
// the Mobile Device Enrollment Protocol v2 (MS-MDE2) over SOAP 1.2.
//
// A Windows device enrolls in three round trips (seed, "Data flow:
// Activating a Windows 10 device", steps 3–8):
//
//  1. Discovery (MS-MDE2 §3.1, PathDiscovery, a path Windows fixes): GET
//     answers 200 with no body, POST Discover answers the authentication
//     policy and the URLs of the next two services.
//  2. Enrollment policy (MS-XCEP, PathPolicy): GetPolicies, authenticated,
//     answers the certificate policy (RSA key of 2048 bits or more).
//  3. Enrollment (MS-WSTEP, PathEnroll): RequestSecurityToken carries the
//     device's PKCS#10 request and its AdditionalContext; the answer is a
//     wap-provisioningdoc with the CA certificate, the device certificate
//     and the OMA-DM account (the w7 APPLICATION and DMClient settings)
//     that the management half (package platform/windows) serves.
//
// Promises:
//
//   - Enrollment is activation: step 3 calls activation.Service.Activate
//     (platform windows) and EnrollAnySubject in one request, so the
//     activation password is checked, counted and consumed exactly as for
//     every other platform. GetPolicies checks the password without
//     consuming it. The certificate names the Custos device ID only.
//   - With the Federated policy, our sign-in page (PathAuth) checks the
//     same credentials and hands the device a 256-bit token, stored only
//     as its hash, that expires in FederatedTokenTTL and is consumed
//     atomically by the enrollment it authenticates (TokenStore).
//   - Every refusal is a SOAP 1.2 fault with the MS-MDE2 subcode the
//     Windows client understands (faults.go maps our error kinds in one
//     place); an unknown user and a wrong password get the same fault.
//   - Untrusted XML is read under a named size limit per endpoint, with
//     any DOCTYPE refused and nesting bounded before it is decoded.
//
// Specifications (learn.microsoft.com):
//   - MS-MDE2: /en-us/openspecs/windows_protocols/ms-mde2/ (§2.2 messages,
//     §3.1 Discovery, §3.2 XCEP, §3.3 WSTEP, §4 examples)
//   - MS-XCEP: /en-us/openspecs/windows_protocols/ms-xcep/
//   - MS-WSTEP: /en-us/openspecs/windows_protocols/ms-wstep/
//   - /en-us/windows/client-management/mdm-enrollment-of-windows-devices
//   - /en-us/windows/client-management/on-premise-authentication-device-enrollment
//   - /en-us/windows/client-management/federated-authentication-device-enrollment
//   - /en-us/windows/client-management/certificate-authentication-device-enrollment
//   - /en-us/windows/client-management/mdm/w7-application-csp,
//     /mdm/dmclient-csp, /mdm/certificatestore-csp (provisioning document)
package mde
