// A real OpenID provider for the single sign-on tests: npm `oidc-provider` with one static
// confidential client and fixed accounts, on a loopback port, over plain http (loopback
// only; no production settings). Its login and consent pages are the package's development
// interactions: any password is accepted for a known login, an unknown login is refused.
// Configuration comes as one JSON argument (see tests/support/oidc_provider.py).
import { pathToFileURL } from 'node:url';

const config = JSON.parse(process.argv[2]);
// The package lives in the project-local npm folder, not beside this script.
const { default: Provider } = await import(pathToFileURL(config.package_main).href);
const accounts = config.accounts; // login -> {name, email, groups}

const provider = new Provider(config.issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // PKCE for every client, confidential ones too
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: account.name, email: account.email,
                 groups: account.groups };
      },
    };
  },
  cookies: { keys: [config.cookie_key] },
  features: { devInteractions: { enabled: true } },
  ttl: { Session: 600, Interaction: 600, Grant: 600, AccessToken: 600, IdToken: 600,
         AuthorizationCode: 60 },
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
