%% @doc MQTT topic names and filters on the BEAM side of the route protocol
%% (docs/route-protocol.md): validation, matching and the shared-subscription prefixes.
%%
%% Rules from MQTT 5.0 section 4.7 (3.1.1 says the same), as beamq's `src/router/topic.rs' and
%% EMQX 4's `emqx_topic' apply them: a topic is UTF-8, 1..65535 bytes, no U+0000, split into
%% levels by `/' (empty levels allowed); `+' is a whole level; `#' is a whole level and the
%% last one, and also matches the parent level (`a/#' matches `a'); a topic starting with `$'
%% is not matched by a filter whose first level is a wildcard. `$share/G/F' and `$queue/F'
%% (EMQX 4) are shared subscriptions routed by `F'.
-module(beamq_topic).

-export([words/1, match/2, valid_topic/1, valid_filter/1, parse_subscription/1]).

-define(MAX_LEN, 65535).

-type topic() :: binary().
-type filter() :: binary().
-export_type([topic/0, filter/0]).

%% @doc The levels of a topic or filter: `<<"a//b">>' gives `[<<"a">>, <<>>, <<"b">>]'.
-spec words(binary()) -> [binary()].
words(Bin) ->
    binary:split(Bin, <<"/">>, [global]).

%% @doc Whether filter `Filter' matches topic name `Topic' (both already valid).
-spec match(topic(), filter()) -> boolean().
match(Topic, Filter) when is_binary(Topic), is_binary(Filter) ->
    TW = words(Topic),
    FW = words(Filter),
    case {TW, FW} of
        {[<<$$, _/binary>> | _], [W | _]} when W =:= <<"+">>; W =:= <<"#">> -> false;
        _ -> match_words(TW, FW)
    end;
match(_, _) ->
    false.

match_words(_, [<<"#">>]) -> true;
match_words([], []) -> true;
match_words([_ | T], [<<"+">> | F]) -> match_words(T, F);
match_words([W | T], [W | F]) -> match_words(T, F);
match_words(_, _) -> false.

%% @doc A topic name a publish may carry: no wildcard.
-spec valid_topic(term()) -> boolean().
valid_topic(T) ->
    common(T) andalso binary:match(T, [<<"+">>, <<"#">>]) =:= nomatch.

%% @doc A topic filter (no share prefix handling: `$share/...' is a literal first level here).
-spec valid_filter(term()) -> boolean().
valid_filter(F) ->
    common(F) andalso levels_ok(words(F)).

levels_ok([<<"#">>]) -> true;
levels_ok([<<"#">> | _]) -> false;
levels_ok([<<"+">> | T]) -> levels_ok(T);
levels_ok([W | T]) -> binary:match(W, [<<"+">>, <<"#">>]) =:= nomatch andalso levels_ok(T);
levels_ok([]) -> true.

common(B) when is_binary(B), byte_size(B) > 0, byte_size(B) =< ?MAX_LEN ->
    binary:match(B, <<0>>) =:= nomatch andalso
        unicode:characters_to_binary(B, utf8, utf8) =:= B;
common(_) ->
    false.

%% @doc Reads a subscription as an MQTT client writes it: `{ok, Group, RouteFilter}' with
%% `Group' `undefined' for a plain filter, the share group for `$share/G/F' and `<<"$queue">>'
%% for `$queue/F' (as `emqx_topic:parse/2'); `RouteFilter' is the filter routes use.
-spec parse_subscription(term()) -> {ok, binary() | undefined, filter()} | {error, atom()}.
parse_subscription(<<"$share/", Rest/binary>> = S) ->
    case common(S) andalso binary:split(Rest, <<"/">>) of
        false -> {error, invalid_filter};
        [G, Inner] when G =/= <<>> ->
            case binary:match(G, [<<"+">>, <<"#">>]) of
                nomatch -> shared(G, Inner);
                _ -> {error, bad_share_group}
            end;
        [<<>>, _] -> {error, bad_share_group};
        [_] -> {error, no_shared_filter}
    end;
parse_subscription(<<"$queue/", Inner/binary>> = S) ->
    case common(S) of
        true -> shared(<<"$queue">>, Inner);
        false -> {error, invalid_filter}
    end;
parse_subscription(F) ->
    case valid_filter(F) of
        true -> {ok, undefined, F};
        false -> {error, invalid_filter}
    end.

shared(_G, <<>>) -> {error, no_shared_filter};
shared(_G, <<"$share/", _/binary>>) -> {error, nested_share};
shared(_G, <<"$queue/", _/binary>>) -> {error, nested_share};
shared(G, Inner) ->
    case valid_filter(Inner) of
        true -> {ok, G, Inner};
        false -> {error, invalid_filter}
    end.
