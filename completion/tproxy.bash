# bash completion for tproxy(1)                          -*- shell-script -*-
#
# Completes long options, address types and their options after a comma,
# filter names and their keys, the values that are a fixed choice
# (verify=0|1, dir=c2s|s2c|both), user names for --user, and file names
# where a value is a FILE or PATH (cert=, key=, keylog=, answer:@FILE,
# unix:PATH, --ca-cert=).
#
# The words come from `tproxy --help` of the tproxy being completed, read
# at each completion: an option, address or filter that the program's help
# lists completes without an edit here.  The lists below, in the help's
# notation, are used for a part the help does not give (no tproxy on PATH,
# or a help that changed its layout).

# ---- Fallback word lists: keep them in step with `tproxy --help`. ----
_tproxy_fb_opts='--help --version --quiet --verbose --json
	--idle-timeout=SECS --max-conns=N --udp-timeout=SECS --user=NAME
	--print-rules --ca-cert=FILE --ca-key=FILE --control=PATH'
_tproxy_fb_listen='tcp-listen:[HOST:]PORT udp-listen:[HOST:]PORT
	tcp-tproxy:[HOST:]PORT udp-tproxy:[HOST:]PORT unix-listen:PATH
	socks5-listen:[HOST:]PORT http-listen:[HOST:]PORT stdio'
_tproxy_fb_target='tcp:HOST:PORT udp:HOST:PORT unix:PATH orig[:HOST] echo
	exec:COMMAND'
_tproxy_fb_addropts='reuseaddr backlog=N ipv6only=0|1 bind=HOST[:PORT] spoof
	port-map=FROM:TO[;FROM:TO] tls tls=auto starttls detect=MS cert=FILE
	key=FILE passthrough=REGEX
	keylog=FILE verify=0|1 proxy-protocol proxy-from=CIDR[;CIDR]
	proxy-protocol=v1|v2 auth=USER:PASS'
_tproxy_fb_filters='log hexdump s/REGEX/REPLACEMENT/[gi][,flush=MS]
	drop[:REGEX] answer:TEXT|@FILE[,match=REGEX]
	redirect:HOST:PORT[,match=REGEX] delay:MS[,jitter=MS] throttle:RATE
	slice:N[,delay=MS] limit:N reset[:MS] stall[:MS] loss:PERCENT[,seed=N]
	inspect[:REGEX][,timeout=S][,edit=raw|hex]'
_tproxy_fb_fkeys='dir=c2s|s2c|both src=CIDR dst=CIDR dport=N sni=REGEX'
# ---- end of the fallback word lists ----

# _tproxy_help BIN: set _tproxy_w_{opts,listen,target,addropts,filters,fkeys}
# to the words of BIN --help, in the notation above; a part that the help
# does not give gets the fallback list.
_tproxy_help()
{
	local help line sect="" opts="" listen="" target="" addropts=""
	local filters="" fkeys="" w ws

	help=$("$1" --help 2>/dev/null) || help=""
	# A section is a line that starts with its heading and the indented
	# lines after it.
	while IFS= read -r line; do
		case $line in
		Options:*) sect=opts; continue ;;
		LISTEN:*) sect=listen; line=${line#LISTEN:} ;;
		TARGET:*) sect=target; line=${line#TARGET:} ;;
		"Address options"*:*) sect=addropts; line=${line#*:} ;;
		FILTER:*) sect=filters; line=${line#FILTER:} ;;
		"Filter keys:"*) sect=fkeys; line=${line#Filter keys:} ;;
		[[:space:]]*) [ -n "${line//[[:space:]]/}" ] || sect="" ;;
		*) sect="" ;;
		esac
		case $sect in
		opts)
			read -ra ws <<<"$line"
			for w in "${ws[@]}"; do
				case $w in --[a-z]*) opts+=" $w" ;; esac
			done ;;
		listen) listen+=" $line" ;;
		target) target+=" $line" ;;
		addropts) addropts+=" $line" ;;
		filters) filters+=" $line" ;;
		fkeys) fkeys+=" $line" ;;
		esac
	done <<<"$help"
	# Address options are a comma-separated list that ends with a '.';
	# the prose after it is not options.
	addropts=${addropts%%.[[:space:]]*}
	addropts=${addropts%.}
	addropts=${addropts//,/ }

	_tproxy_w_opts=${opts:-$_tproxy_fb_opts}
	_tproxy_w_listen=${listen:-$_tproxy_fb_listen}
	_tproxy_w_target=${target:-$_tproxy_fb_target}
	_tproxy_w_addropts=${addropts:-$_tproxy_fb_addropts}
	_tproxy_w_filters=${filters:-$_tproxy_fb_filters}
	_tproxy_w_fkeys=${fkeys:-$_tproxy_fb_fkeys}
}

# _tproxy_split WORDS: the words of WORDS (split at blanks and newlines,
# never expanded as file names: `[:PORT]` is no glob) in _tproxy_ws.
_tproxy_split()
{
	read -ra _tproxy_ws -d '' <<<"$1" || true
}

# These helpers run in the caller's shell, not in $(...): a completion
# should not fork more than it must.

# _tproxy_names WORDS [PREFIX]: add to cands each word's name as it is
# typed, after PREFIX: `tcp-listen:[HOST:]PORT` gives `tcp-listen:`,
# `verify=0|1` `verify=`, `drop[:REGEX]` `drop`, `s/REGEX/...` `s/`;
# `(tcp-l)`, `HOST` and other words that are not names are skipped.
_tproxy_names()
{
	local w _tproxy_ws
	_tproxy_split "$1"
	for w in "${_tproxy_ws[@]}"; do
		[[ $w =~ ^(-*[a-z][a-z0-9-]*)([:=/]?) ]] || continue
		cands+=("${2-}${BASH_REMATCH[1]}${BASH_REMATCH[2]}")
	done
}

# _tproxy_spec WORDS NAME: set spec to the notation of NAME's value (`0|1`,
# `FILE`, `TEXT|@FILE`), without the optional keys after it; empty when
# NAME takes no value or is not there.
_tproxy_spec()
{
	local w _tproxy_ws
	spec=""
	_tproxy_split "$1"
	for w in "${_tproxy_ws[@]}"; do
		[[ $w =~ ^(-*[a-z][a-z0-9-]*)([:=/]?)(.*)$ ]] || continue
		[ "${BASH_REMATCH[1]}${BASH_REMATCH[2]}" = "$2" ] || continue
		w=${BASH_REMATCH[3]}
		spec=${w%%\[*}
		return 0
	done
}

# _tproxy_keys WORDS FILTER: add to keys the keys that FILTER's own
# notation lists, in the same notation (`delay:MS[,jitter=MS]` gives
# `jitter=MS`).
_tproxy_keys()
{
	local w _tproxy_ws re='\[,([a-z][a-z0-9-]*=[^]]*)\](.*)$'
	_tproxy_split "$1"
	for w in "${_tproxy_ws[@]}"; do
		[[ $w =~ ^([a-z][a-z0-9-]*) ]] || continue
		[ "${BASH_REMATCH[1]}" = "$2" ] || continue
		while [[ $w =~ $re ]]; do
			keys+=" ${BASH_REMATCH[1]}"
			w=${BASH_REMATCH[2]}
		done
	done
}

# _tproxy_values SPEC PREFIX VALUE: add to cands the completions of VALUE,
# typed after PREFIX, for a value written SPEC: the literal choices of
# `0|1`, files for FILE or PATH, and files after an @ for @FILE.  Sets
# _tproxy_files and _tproxy_fprefix when file names were added.
_tproxy_values()
{
	local alt f alts
	IFS='|' read -ra alts <<<"$1"
	for alt in "${alts[@]}"; do
		case $alt in
		FILE | PATH | DIR | FILE/ | DIR/)
			[[ $3 == @* ]] && continue
			_tproxy_files=1
			_tproxy_fprefix=$2
			while IFS= read -r f; do
				[ -d "$f" ] && f+=/
				cands+=("$2$f")
			done < <(compgen -f -- "$3")
			;;
		@FILE)
			if [[ $3 != @* ]]; then
				[ -z "$3" ] && cands+=("$2@")
				continue
			fi
			while IFS= read -r f; do
				[ -d "$f" ] && f+=/
				cands+=("$2@$f")
			done < <(compgen -f -- "${3#@}")
			;;
		*[!a-z0-9-]* | "") ;;
		*) cands+=("$2$alt") ;;
		esac
	done
}

# _tproxy_words: split the command line up to the cursor into arguments as
# the shell will (quotes and backslashes removed), into _tproxy_args; the
# last one is the argument being completed (empty after a space).
_tproxy_words()
{
	local line=${COMP_LINE:0:COMP_POINT} a="" q="" c i
	_tproxy_args=()
	for ((i = 0; i < ${#line}; i++)); do
		c=${line:i:1}
		if [ -n "$q" ]; then
			if [ "$c" = "$q" ]; then
				q=""
			elif [ "$c" = "\\" ] && [ "$q" = '"' ]; then
				i=$((i + 1))
				a+=${line:i:1}
			else
				a+=$c
			fi
			continue
		fi
		case $c in
		[\'\"]) q=$c ;;
		\\)
			i=$((i + 1))
			a+=${line:i:1} ;;
		[[:space:]])
			[ -n "$a" ] && _tproxy_args+=("$a")
			a="" ;;
		*) a+=$c ;;
		esac
	done
	_tproxy_args+=("$a")
}

_tproxy()
{
	local bin=${COMP_WORDS[0]} cur word name spec keys strip optval=""
	local n i c pos=0 opts_done=""
	local -a cands=()
	local _tproxy_files="" _tproxy_fprefix="" _tproxy_args
	local _tproxy_w_opts _tproxy_w_listen _tproxy_w_target
	local _tproxy_w_addropts _tproxy_w_filters _tproxy_w_fkeys

	[[ $bin == \~/* ]] && bin=$HOME/${bin#\~/}
	_tproxy_help "$bin"
	_tproxy_words
	n=${#_tproxy_args[@]}
	cur=${_tproxy_args[n - 1]}

	# Where the argument is: among the options (before the first address),
	# or in a route at pos 0 (LISTEN), 1 (TARGET), 2 and after (FILTERs); a
	# lone + starts the next route.  `--opt VALUE` takes the next argument.
	for ((i = 1; i < n - 1; i++)); do
		word=${_tproxy_args[i]}
		if [ -z "$opts_done" ] && [[ $word == -?* ]]; then
			_tproxy_spec "$_tproxy_w_opts" "$word="
			if [[ $word == --* && $word != *=* ]] && [ -n "$spec" ]; then
				if ((i + 1 == n - 1)); then optval=$word; else ((i++)); fi
			fi
			continue
		fi
		opts_done=1
		if [ "$word" = + ]; then pos=0; else pos=$((pos + 1)); fi
	done
	# completed as --opt=VALUE; bash's word is then VALUE alone
	if [ -n "$optval" ]; then
		cur=$optval=$cur
	fi

	if [ -n "$optval" ] || { [ -z "$opts_done" ] && [[ $cur == -* ]]; }; then
		if [[ $cur == *=* ]]; then
			name=${cur%%=*}=
			_tproxy_spec "$_tproxy_w_opts" "$name"
			if [ "$name" = --user= ]; then
				mapfile -t cands < <(compgen -P "$name" -u -- "${cur#*=}")
			else
				_tproxy_values "$spec" "$name" "${cur#*=}"
			fi
		else
			_tproxy_names "$_tproxy_w_opts"
		fi
	elif [ "$pos" -lt 2 ]; then
		if [ "$pos" = 0 ]; then
			keys=$_tproxy_w_listen
		else
			keys=$_tproxy_w_target
		fi
		name=${cur%%[:,]*}
		name=${name,,}
		if [[ $cur == *,* ]]; then
			# an address option, or its value after =
			word=${cur##*,}
			if [[ $word == *=* ]]; then
				_tproxy_spec "$_tproxy_w_addropts" "${word%%=*}="
				_tproxy_values "$spec" "${cur%=*}=" "${word#*=}"
			else
				_tproxy_names "$_tproxy_w_addropts" "${cur%,*},"
			fi
		elif [[ $cur == *:* ]]; then
			# the address's own parameter: a path for unix:PATH
			_tproxy_spec "$keys" "$name:"
			_tproxy_values "$spec" "${cur%%:*}:" "${cur#*:}"
		else
			_tproxy_names "$keys"
		fi
	else
		name=${cur%%[!a-z0-9-]*}
		keys=$_tproxy_w_fkeys
		_tproxy_keys "$_tproxy_w_filters" "$name"
		if [[ $cur == *,* ]]; then
			# a key, or its value after =
			word=${cur##*,}
			if [[ $word == *=* ]]; then
				_tproxy_spec "$keys" "${word%%=*}="
				_tproxy_values "$spec" "${cur%=*}=" "${word#*=}"
			else
				_tproxy_names "$keys" "${cur%,*},"
			fi
		elif [[ $cur == "$name:"* ]]; then
			# the filter's argument: a file for pcap:FILE, answer:@FILE
			_tproxy_spec "$_tproxy_w_filters" "$name:"
			_tproxy_values "$spec" "$name:" "${cur#*:}"
		else
			_tproxy_names "$_tproxy_w_filters"
			cands+=(+)
		fi
	fi

	# Bash replaces only its own word, which starts after the last of
	# COMP_WORDBREAKS (: and = among them), or at an @ (readline keeps it in
	# the word): hand it the candidates that continue what is typed, less
	# what comes before that word.
	word=${COMP_LINE:0:COMP_POINT}
	for ((i = ${#word}; i > 0; i--)); do
		c=${word:i-1:1}
		[[ $c == [[:space:]] || ${COMP_WORDBREAKS-} == *"$c"* ]] || continue
		[ "$c" = @ ] && i=$((i - 1))
		break
	done
	word=${word:i}
	strip=${cur%"$word"}
	COMPREPLY=()
	for c in "${cands[@]}"; do
		[[ $c == "$cur"* ]] && COMPREPLY+=("${c#"$strip"}")
	done
	# File names alone in bash's word: let readline quote them and mark
	# directories itself.
	if [ -n "$_tproxy_files" ] && [ "$strip" = "$_tproxy_fprefix" ]; then
		COMPREPLY=("${COMPREPLY[@]%/}")
		compopt -o filenames 2>/dev/null
	else
		for c in "${COMPREPLY[@]}"; do
			case $c in
			*[:=,/@]) compopt -o nospace 2>/dev/null; break ;;
			esac
		done
	fi
	return 0
}

complete -F _tproxy tproxy
