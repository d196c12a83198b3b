"""The JSON formats `--output json` writes (gcd.documents): here so that building the command
line (`gcd --help`) does not import the documents and what they describe."""

FORMATS = (1, 2)
LATEST_FORMAT = 2
