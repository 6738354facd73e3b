// A real OpenID provider for the single sign-on test: `oidc-provider` from npm
// (an OpenID Certified implementation), on 127.0.0.1, with its development
// login pages (any password), accounts whose groups the test changes, and a
// switch that makes the token endpoint hand out a bad ID token (tampered,
// for another audience, or expired), signed with the provider's own key where
// a signature is needed, so each of Arbiter's refusals is checked against a
// token from a real provider.
import http from "node:http";
import Provider from "oidc-provider";
import { generateKeyPair, exportJWK, importJWK, SignJWT, decodeJwt } from "jose";

export async function startProvider({ clientId, clientSecret, redirectUri, postLogoutRedirectUri, groups }) {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: "test-key-1", alg: "RS256", use: "sig" };
  const signingKey = await importJWK(jwk, "RS256");

  const accounts = new Map(Object.entries(groups));
  let mode = null;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        post_logout_redirect_uris: [postLogoutRedirectUri],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: ["a-cookie-key-for-the-test-provider"] },
    scopes: ["openid", "email", "profile", "groups"],
    claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
    // the scopes' claims go into the ID token (as Okta or Entra do for a groups claim)
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email: `${sub}@example.com`, email_verified: true, groups: accounts.get(sub) || [] };
        },
      };
    },
  });

  // The fault switch: rewrite the ID token the token endpoint answers with.
  provider.use(async (ctx, next) => {
    await next();
    if (!mode || ctx.path !== "/token" || !ctx.body || typeof ctx.body.id_token !== "string") return;
    const token = ctx.body.id_token;
    const claims = decodeJwt(token);
    const now = Math.floor(Date.now() / 1000);
    const resign = (c) => new SignJWT(c).setProtectedHeader({ alg: "RS256", kid: jwk.kid, typ: "JWT" }).sign(signingKey);
    if (mode === "tampered") {
      const [h, , sig] = token.split(".");
      // the payload changed after signing: one more group than the provider gave
      const forged = Buffer.from(JSON.stringify({ ...claims, groups: [...(claims.groups || []), "arbiter-admins-2"] })).toString("base64url");
      ctx.body = { ...ctx.body, id_token: `${h}.${forged}.${sig}` };
    } else if (mode === "wrong-audience") {
      ctx.body = { ...ctx.body, id_token: await resign({ ...claims, aud: "another-client", azp: "another-client" }) };
    } else if (mode === "expired") {
      ctx.body = { ...ctx.body, id_token: await resign({ ...claims, iat: now - 7200, exp: now - 3600 }) };
    }
  });

  server.on("request", provider.callback());
  return {
    issuer,
    setGroups(user, g) {
      accounts.set(user, g);
    },
    setMode(m) {
      mode = m;
    },
    close() {
      server.closeAllConnections?.();
      server.close();
    },
  };
}
