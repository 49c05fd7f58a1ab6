#!/bin/sh
# An external reward for gym (reward_funcs: external, reward_command: "sh docs/examples/reward_exact_answer.sh"):
# 1.0 when the completion contains the row's `answer` column verbatim, 0.0 otherwise,
# null when the row has no answer. One JSON object per line in, one number per line out.
# Uses only jq-free POSIX tools: the JSON is read with sed, good enough for plain answers.
while IFS= read -r line; do
  answer=$(printf '%s' "$line" | sed -n 's/.*"columns":{[^}]*"answer":"\([^"]*\)".*/\1/p')
  completion=$(printf '%s' "$line" | sed -n 's/.*"completion":"\([^"]*\)".*/\1/p')
  if [ -z "$answer" ]; then echo null
  elif printf '%s' "$completion" | grep -qF -- "$answer"; then echo 1.0
  else echo 0.0
  fi
done
