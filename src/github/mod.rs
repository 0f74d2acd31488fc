//! The one GitHub client: app auth, installation tokens, REST and Projects v2 GraphQL, retries, caching, accounting.
