"""Test harness: real Claude-style files, a real gunicorn server, a real SSE client."""
