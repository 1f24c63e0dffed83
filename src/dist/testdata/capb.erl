-module(capb).
-export([start/0]).
start() ->
    register(sink, spawn(fun loop/0)).
loop() ->
    receive
        {reply_to, P, T} -> P ! {echo, T}, loop();
        {link_me, P} -> link(P), loop();
        {exit_me, P, R} -> exit(P, R), loop();
        _ -> loop()
    end.
