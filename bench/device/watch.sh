# Watch bench/gpu_tables.sh's run in /root/res for $1 s, or until it is all done: the results
# (without checkpoints) tarred into $OUT every 10 s and at the end, with the log.
R=/root/res
snap() {
    tar -C $R --exclude='*.checkpoints' -czf "$OUT/snap.tmp" . 2>/dev/null &&
        mv "$OUT/snap.tmp" "$OUT/results.tgz"
    cp $R/log.txt "$OUT/log.txt" 2>/dev/null
}
end=$((SECONDS + $1))
while [ $SECONDS -lt $end ] && ! grep -qs "all done" $R/log.txt; do
    sleep 10
    snap
done
snap
grep -E "exit|all done|Traceback|Error|search budget" $R/log.txt | tail -40
tail -5 /root/keep/daemon.out
