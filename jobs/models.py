"""Print jobs and G-code files arrive with the jobs issue; the app is wired in now."""
