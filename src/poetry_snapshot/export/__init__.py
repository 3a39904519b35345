"""`poetry env-export`: environment.yml, requirements.txt, pylock.toml and the JSON env manifest.

`request` holds what every format shares (the request, the result, the header naming the
command that regenerates a file); `exporters` maps each format to the module that writes it.
Exports are deterministic: the same lock, settings and environment give the same bytes, so
`--check` can compare them. Only `--timestamp` adds the time.
"""
