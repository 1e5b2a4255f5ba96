DROP TABLE spy_oauth_refresh_token;
